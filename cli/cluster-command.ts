// `shardline cluster --config <file>`: the local cluster. Starts a shard process for every
// loopback destination in a router config, then the router; restarts any that dies; stops them all.
import { once } from 'node:events'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parse, stringify } from 'yaml'
import { createLogger } from '../common/logger.ts'
import { loadRouterConfig, type DestinationConfig } from '../router/config.ts'
import { SupervisedChild } from './child-process.ts'

export const DEFAULT_CLUSTER_CONFIG = fileURLToPath(new URL('../config/local.yaml', import.meta.url))
const SHARD_READY = /shardline shard \S+ ready: resp ([\d.]+):(\d+) admin http:\/\/([\d.]+):(\d+)/
const ROUTER_READY = /shardline router ready: (http:\/\/\S+) admin (http:\/\/\S+)/
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/
const STOP_DEADLINE_MS = 5000

export async function runClusterCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, 'max-memory': { type: 'string' } }, strict: true })
  const file = values.config ?? DEFAULT_CLUSTER_CONFIG
  const config = loadRouterConfig(file)
  const log = createLogger('cluster')
  const env = { ...process.env, SHARDLINE_LOG_FORMAT: process.stdout.isTTY ? 'pretty' : (process.env.SHARDLINE_LOG_FORMAT ?? 'json') }
  const children: SupervisedChild[] = []
  let stopping = false
  const stopAll = async (code: number) => {
    if (stopping) return
    stopping = true
    const deadline = setTimeout(() => children.forEach((child) => child.kill('SIGKILL')), STOP_DEADLINE_MS)
    // The router drains first, so requests in flight still find their shards.
    const [routers, shards] = [children.filter((c) => c.name === 'router'), children.filter((c) => c.name !== 'router')]
    for (const group of [routers, shards]) await Promise.all(group.map((child) => child.stop('SIGTERM')))
    clearTimeout(deadline)
    process.exit(code)
  }
  process.on('SIGINT', () => void stopAll(0))
  process.on('SIGTERM', () => void stopAll(0))

  try {
    // Port 0 in the config means "pick one": the router then gets a copy of the same YAML with
    // the real addresses written over the destinations, every other setting as the user wrote it.
    let portsChanged = false
    const starting: Array<Promise<void>> = []
    const yaml = parse(readFileSync(file, 'utf8')) as { pools: Record<string, { shards: Array<{ primary: unknown; replicas?: unknown[] }> }> }
    for (const [poolName, pool] of Object.entries(config.pools)) {
      for (const [s, shard] of pool.shards.entries()) {
        const written = yaml.pools[poolName].shards[s]
        const destinations: Array<[string, DestinationConfig, (address: string, admin: string) => void]> = [
          [shard.name, shard.primary, (address, admin) => (written.primary = { address, admin })],
          ...shard.replicas.map((replica, r): [string, DestinationConfig, (address: string, admin: string) => void] =>
            [`${shard.name}.replica${r + 1}`, replica, (address, admin) => (written.replicas![r] = { address, admin })]),
        ]
        // Data ports are fixed before anything starts: a primary and its replicas name each
        // other on their command lines (--replicas, --replicaof).
        const dataPorts: number[] = []
        for (const [, destination] of destinations) {
          const { host, port } = destination.address
          if (port === 0 && LOOPBACK.test(host)) portsChanged = true
          dataPorts.push(port === 0 && LOOPBACK.test(host) ? await freePort(host) : port)
        }
        const dataAddresses = destinations.map(([, destination], d) => `${destination.address.host}:${dataPorts[d]}`)
        for (const [d, [name, destination, record]] of destinations.entries()) {
          if (!LOOPBACK.test(destination.address.host)) continue
          const args = ['shard', '--name', name, '--host', destination.address.host, '--port', String(dataPorts[d]), '--admin-port', String(destination.admin?.port ?? 0)]
          if (d === 0 && dataAddresses.length > 1) args.push('--replicas', dataAddresses.slice(1).join(','))
          if (d > 0) args.push('--replicaof', dataAddresses[0])
          if (values['max-memory']) args.push('--max-memory', values['max-memory'])
          const child = new SupervisedChild({ name: `${poolName}/${name}`, args, readyLine: SHARD_READY, env, log })
          children.push(child)
          starting.push(child.ready.then((match) => {
            if (destination.admin?.port === 0) portsChanged = true
            record(`${match[1]}:${match[2]}`, `${match[3]}:${match[4]}`)
            // A restart must come back on the admin port the router's config now names.
            child.args = args.map((arg, i) => (args[i - 1] === '--admin-port' ? match[4] : arg))
          }))
        }
      }
    }
    await Promise.all(starting)
    let routerConfig = file
    if (portsChanged) {
      routerConfig = join(mkdtempSync(join(tmpdir(), 'shardline-cluster-')), 'router.yaml')
      writeFileSync(routerConfig, stringify(yaml))
    }
    const router = new SupervisedChild({ name: 'router', args: ['router', '--config', routerConfig], readyLine: ROUTER_READY, env, log })
    children.push(router)
    const [, dataUrl, adminUrl] = await router.ready
    console.log(`shardline cluster ready: ${dataUrl} (admin ${adminUrl}), ${children.length - 1} shard processes`)
    console.log(`  try: curl -XPOST ${dataUrl}/k -H 'content-type: application/json' -d '{"value":"v","ttl":60}'`)
  } catch (error) {
    log.error({ error: (error as Error).message }, 'the local cluster did not start')
    await stopAll(1)
  }
}

// A port the kernel says is free now. Another process could take it before the shard binds;
// on a developer's loopback that race is rare and shows as a clear "address in use" exit.
async function freePort(host: string): Promise<number> {
  const server = net.createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}
