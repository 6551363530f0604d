// The router-wide budget of value bytes held by responses in progress on both fronts (HTTP and RESP,
// limits.maxInFlightResponseBytes): charged as values arrive, released as responses end, refused past it.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { HttpError } from '../common/http-errors.ts'

export class ResponseBudget {
  /** Bytes held right now, across every response in progress. */
  held = 0

  /** Charges bytes unless that would pass max; the caller releases what it charged, once. */
  charge(bytes: number, max: number): boolean {
    if (this.held + bytes > max) return false
    this.held += bytes
    return true
  }

  release(bytes: number): void {
    this.held -= bytes
  }

  /**
   * Charges `bytes` to an HTTP request's response, or throws 503 overloaded when the router holds
   * too much already. The charge is released once, when the response is finished or abandoned.
   */
  hold(request: FastifyRequest, reply: FastifyReply, bytes: number, max: number): void {
    if (this.held + bytes > max) {
      throw new HttpError(503, 'overloaded', `the router holds ${this.held} bytes of responses in progress, the limit is ${max}: retry shortly`)
    }
    // A client already gone gets no response, and no 'close' would come to release the charge.
    if (bytes === 0 || reply.raw.destroyed) return
    this.held += bytes
    if (request.heldBytes === 0) {
      reply.raw.once('close', () => {
        this.release(request.heldBytes)
        request.heldBytes = 0
      })
    }
    request.heldBytes += bytes
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Bytes this request's response holds against the router's ResponseBudget. */
    heldBytes: number
  }
}
