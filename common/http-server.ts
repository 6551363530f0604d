// Creates every fastify server of ours the same way: our pino logger, no line per request
// unless an access log is asked for, strict JSON bodies, and the {error, code} error replies.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify'
import type { Logger } from './logger.ts'
import { installErrorHandlers } from './http-errors.ts'

export interface HttpServerOptions {
  log: Logger
  bodyLimit?: number
  accessLog?: boolean
}

export function createHttpServer(options: HttpServerOptions) {
  const serverOptions: FastifyServerOptions = {
    loggerInstance: options.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: !options.accessLog }),
    bodyLimit: options.bodyLimit,
    // A 250-byte key percent-encodes to 750 characters; longer ones get our 400, not a 404.
    routerOptions: { maxParamLength: 4096 },
    // A ttl of "10" in a JSON body is a client bug worth a 400, not something to guess at.
    // Unknown fields are refused rather than silently dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  }
  const app = Fastify(serverOptions)
  // Bodies are JSON or raw bytes (octet-stream); text/plain would be a value of unclear encoding.
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  installErrorHandlers(app)
  return app
}
