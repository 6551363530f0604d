// The process logger: JSON lines through pino, pretty-printed when stdout is a terminal.
// Every process (shard, router, cluster) makes one and hands it to fastify.
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger(name: string, level = process.env.SHARDLINE_LOG_LEVEL ?? 'info'): Logger {
  const format = process.env.SHARDLINE_LOG_FORMAT
  const pretty = format === 'pretty' || (process.stdout.isTTY && format !== 'json')
  return pino({
    name,
    level,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l' } } } : {}),
  })
}
