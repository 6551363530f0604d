// HTTP error replies for every fastify server of ours: one JSON shape {error, code}, fastify's
// own parse and validation failures mapped onto it, each bad request logged exactly once.
import type { FastifyError, FastifyInstance } from 'fastify'

/** A failure with the status and machine-readable code the client sees. */
export class HttpError extends Error {
  readonly statusCode: number
  readonly code: string

  constructor(statusCode: number, code: string, message: string) {
    super(message)
    this.statusCode = statusCode
    this.code = code
  }
}

// fastify's error codes for input it refuses before a handler runs.
const FASTIFY_CODES: Record<string, [number, string]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'invalid_json'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'invalid_json'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'invalid_content_length'],
  FST_ERR_BAD_URL: [400, 'invalid_url'],
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    let status: number
    let code: string
    if (error instanceof HttpError) {
      status = error.statusCode
      code = error.code
    } else if (error.validation) {
      status = 400
      code = 'invalid_request'
    } else if (error.code && FASTIFY_CODES[error.code]) {
      ;[status, code] = FASTIFY_CODES[error.code]
    } else if (error instanceof SyntaxError) {
      status = 400
      code = 'invalid_json'
    } else if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode
      code = 'bad_request'
    } else {
      request.log.error({ err: error }, 'request failed')
      return reply.code(500).send({ error: 'internal error', code: 'internal' })
    }
    if (status < 500) request.log.warn({ code, url: request.url, method: request.method }, error.message)
    else request.log.error({ code, url: request.url, method: request.method }, error.message)
    return reply.code(status).send({ error: error.message, code })
  })
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: `no route for ${request.method} ${request.url.split('?')[0]}`, code: 'no_route' })
  })
}
