// HTTP error replies for every fastify server of ours: one JSON shape {error, code}, for our own
// refusals, fastify's (parse, validation, bad URLs) and Node's (malformed HTTP, header overflow).
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from './logger.ts'

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

/** The body of every refusal. */
export function errorBody(message: string, code: string): string {
  return JSON.stringify({ error: message, code })
}

/**
 * A complete HTTP/1.1 error response, for refusals written straight to a socket (no request was
 * parsed, or none will be): the connection closes after it.
 */
export function rawErrorResponse(status: number, code: string, message: string): string {
  const body = errorBody(message, code)
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
}

// fastify's (and @fastify/reply-from's, for the admin proxy) error codes, with what we answer.
const FASTIFY_CODES: Record<string, [number, string, string?]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'invalid_json'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'invalid_json'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'invalid_content_length'],
  // Both would otherwise echo the whole (possibly huge) URL back.
  FST_ERR_BAD_URL: [400, 'invalid_url', 'the URL is not valid percent-encoded UTF-8'],
  FST_ERR_MAX_PARAM_LENGTH: [414, 'url_too_long', 'a path segment (a key) is too long'],
  FST_REPLY_FROM_SERVICE_UNAVAILABLE: [503, 'upstream_unavailable'],
  FST_REPLY_FROM_GATEWAY_TIMEOUT: [504, 'upstream_timeout'],
  FST_REPLY_FROM_BAD_GATEWAY: [502, 'upstream_error'],
}

// A schema violation in one of these fields gets the field's own code rather than invalid_request.
const FIELD_CODES: Record<string, string> = { ttl: 'invalid_ttl' }

function classify(error: FastifyError): { status: number; code: string; message: string } | null {
  if (error instanceof HttpError) return { status: error.statusCode, code: error.code, message: error.message }
  if (error.validation) {
    const field = error.validation[0]?.instancePath.split('/').at(-1) ?? ''
    return { status: 400, code: FIELD_CODES[field] ?? 'invalid_request', message: error.message }
  }
  const known = error.code ? FASTIFY_CODES[error.code] : undefined
  if (known) return { status: known[0], code: known[1], message: known[2] ?? error.message }
  if (error instanceof SyntaxError) return { status: 400, code: 'invalid_json', message: error.message }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return { status: error.statusCode, code: 'bad_request', message: error.message }
  return null
}

function sendError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const refusal = classify(error)
  if (refusal === null) {
    request.log.error({ err: error }, 'request failed')
    return reply.code(500).type('application/json').send(errorBody('internal error', 'internal'))
  }
  const { status, code, message } = refusal
  // The URL is cut short: a refused one may be as long as the header limit allows.
  const context = { code, url: request.url.slice(0, 200), method: request.method }
  if (status < 500) request.log.warn(context, message)
  else request.log.error(context, message)
  return reply.code(status).type('application/json').send(errorBody(message, code))
}

/** For fastify's frameworkErrors option: refusals made before routing (bad URL, long segment). */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  void sendError(error, request, reply)
}

/**
 * For fastify's clientErrorHandler option: Node refused the bytes before any request existed
 * (malformed HTTP, headers too large, a request that took too long). Answers in our shape and
 * closes the connection, as Node would.
 */
export function clientErrorHandler(log: Logger): (error: Error & { code?: string }, socket: Socket) => void {
  return (error, socket) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const [status, code, message] =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request_timeout', 'the request did not arrive in time']
      : error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'headers_too_large', 'the request line and headers are larger than the server reads']
      : [400, 'bad_request', 'the request is not valid HTTP/1.1']
    log.warn({ code, reason: error.code, remote: socket.remoteAddress }, message)
    if (socket.writable) socket.end(rawErrorResponse(status, code, message))
    socket.destroySoon()
  }
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler(sendError)
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).type('application/json').send(errorBody(`no route for ${request.method} ${request.url.split('?')[0].slice(0, 200)}`, 'no_route'))
  })
}
