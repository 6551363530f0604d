// `shardline router --config <file>`: runs one router process, prints its addresses, reloads
// on SIGHUP or file change, and drains and exits on SIGTERM or SIGINT.
import { parseArgs } from 'node:util'
import { createLogger } from '../common/logger.ts'
import { ConfigError } from '../common/validate.ts'
import { startRouter } from '../router/router-process.ts'
import { installShutdown } from './shutdown.ts'

export const ROUTER_USAGE = `shardline router --config <file>
  --config <file>   the router's YAML config (pools, routes, hashing, health, limits, listen)`

export async function runRouterCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, help: { type: 'boolean' } }, strict: true })
  if (values.help) {
    console.log(ROUTER_USAGE)
    return
  }
  if (!values.config) throw new ConfigError(`--config is required\n${ROUTER_USAGE}`)
  const log = createLogger('router')
  const router = await startRouter(values.config, log)
  console.log(`shardline router ready: http://${router.data.address}:${router.data.port} admin http://${router.admin.address}:${router.admin.port}`)
  installShutdown(log, () => router.close(4000))
}
