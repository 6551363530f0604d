// `shardline router --config <file>`: runs a router (or, with `workers: N`, N worker processes
// sharing the data and RESP ports), prints its addresses, reloads on SIGHUP or file change, drains on SIGTERM.
import cluster from 'node:cluster'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { AggregatorRegistry } from 'prom-client'
import { createLogger } from '../common/logger.ts'
import { ConfigError } from '../common/validate.ts'
import { loadRouterConfig } from '../router/config.ts'
import { startRouter } from '../router/router-process.ts'
import { installShutdown } from './shutdown.ts'

type Address = { address: string; port: number }

/** The RESP front's part of the ready line, when there is one. */
const respPart = (resp: Address | null | undefined) => (resp ? ` resp ${resp.address}:${resp.port}` : '')

export const ROUTER_USAGE = `shardline router --config <file>
  --config <file>   the router's YAML config (pools, routes, hashing, health, limits, listen)`

export async function runRouterCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, help: { type: 'boolean' } }, strict: true })
  if (values.help) {
    console.log(ROUTER_USAGE)
    return
  }
  if (!values.config) throw new ConfigError(`--config is required\n${ROUTER_USAGE}`)
  const { workers, listen, tls } = loadRouterConfig(values.config)
  // With TLS the data and admin ports serve HTTPS (and the RESP port TLS): the ready line says so.
  const scheme = tls === null ? 'http' : 'https'
  if (workers > 1 && cluster.isPrimary) return runPrimary(values.config, workers, listen.resp !== undefined, scheme)
  const log = createLogger(cluster.isWorker ? `router:${cluster.worker!.id}` : 'router')
  if (cluster.isWorker) {
    // A worker serves the data and RESP ports (shared through node:cluster) and answers the primary's
    // requests for its metrics; the primary serves the admin port.
    const router = await startRouter(values.config, log, { data: true, admin: false })
    // Constructing one installs prom-client's worker-side listener for the primary's requests.
    new AggregatorRegistry()
    AggregatorRegistry.setRegistries([router.metrics.registry])
    installShutdown(log, () => router.close(4000))
    return
  }
  const router = await startRouter(values.config, log)
  console.log(`shardline router ready: ${scheme}://${router.data!.address}:${router.data!.port} admin ${scheme}://${router.admin!.address}:${router.admin!.port}${respPart(router.resp)}`)
  installShutdown(log, () => router.close(4000))
}

// With workers: N processes share the data and RESP ports (one per core); this one serves the admin
// port, with /metrics summed over the workers, and stops them all on SIGTERM.
async function runPrimary(configFile: string, workers: number, resp: boolean, scheme: string): Promise<void> {
  const log = createLogger('router')
  const aggregator = new AggregatorRegistry()
  const router = await startRouter(configFile, log, { data: false, admin: true, metricsText: () => aggregator.clusterMetrics() })
  const forked = Array.from({ length: workers }, () => cluster.fork())
  // Workers share each listening socket, so they all report the same (possibly picked) ports: the
  // data port's first, then the RESP port's (router-process.ts listens in that order).
  const listening = (worker: (typeof forked)[number]) => new Promise<Address[]>((resolve) => {
    const addresses: Address[] = []
    const onListening = (address: Address) => {
      addresses.push(address)
      if (addresses.length < (resp ? 2 : 1)) return
      worker.off('listening', onListening)
      resolve(addresses)
    }
    worker.on('listening', onListening)
  })
  const [[address, respAddress]] = await Promise.all(forked.map(listening))
  console.log(`shardline router ready: ${scheme}://${address.address}:${address.port} admin ${scheme}://${router.admin!.address}:${router.admin!.port}${respPart(respAddress)} (${workers} workers)`)
  process.on('SIGHUP', () => forked.forEach((worker) => worker.process.kill('SIGHUP')))
  installShutdown(log, async () => {
    await Promise.all(forked.map(async (worker) => {
      worker.process.kill('SIGTERM')
      await once(worker, 'exit')
    }))
    await router.close(1000)
  })
}
