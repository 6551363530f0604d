// `shardline cluster --config <file>`: the local cluster. Starts a shard process for every
// loopback destination in a router config, then the router; restarts any that dies; stops them all.
// A secured config (tls, shardAccess) gets throwaway certificates and shards that ask for its password.
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parse, stringify } from 'yaml'
import { createLogger, type Logger } from '../common/logger.ts'
import { SecretSet, type SecretSource } from '../common/secrets.ts'
import { loadRouterConfig, type DestinationConfig, type RouterConfig, type ShardConfig } from '../router/config.ts'
import { ChildStartError, SupervisedChild } from './child-process.ts'
import { ensureLocalTls } from './local-tls.ts'

export const DEFAULT_CLUSTER_CONFIG = fileURLToPath(new URL('../config/local.yaml', import.meta.url))
const SHARD_READY = /shardline shard \S+ ready: resp ([\d.]+):(\d+) admin https?:\/\/([\d.]+):(\d+)/
const ROUTER_READY = /shardline router ready: (https?:\/\/\S+) admin (https?:\/\/\S+)(?: resp (\S+))?/
/** Where a secured config's throwaway CA and certificate live, under the working directory. */
const LOCAL_TLS_DIR = '.shardline/tls'
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/
const ADDRESS_IN_USE = /EADDRINUSE: address already in use (\S+):(\d+)/
const STOP_DEADLINE_MS = 5000
/** Starts of a shard group on newly picked ports before the cluster gives up on it. */
export const PORT_ATTEMPTS = 5

export async function runClusterCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, 'max-memory': { type: 'string' } }, strict: true })
  const file = values.config ?? DEFAULT_CLUSTER_CONFIG
  const config = loadRouterConfig(file)
  const log = createLogger('cluster')
  // A token or password missing from the environment would otherwise stop the router only after
  // every shard started: say it before anything starts.
  checkSecrets(config)
  const env = { ...process.env, SHARDLINE_LOG_FORMAT: process.stdout.isTTY ? 'pretty' : (process.env.SHARDLINE_LOG_FORMAT ?? 'json') }
  const children = new Set<SupervisedChild>()
  let stopping = false
  const stopAll = async (code: number) => {
    if (stopping) return
    stopping = true
    const deadline = setTimeout(() => children.forEach((child) => child.kill('SIGKILL')), STOP_DEADLINE_MS)
    // The router drains first, so requests in flight still find their shards.
    const [routers, shards] = [[...children].filter((c) => c.name === 'router'), [...children].filter((c) => c.name !== 'router')]
    for (const group of [routers, shards]) await Promise.all(group.map((child) => child.stop('SIGTERM')))
    clearTimeout(deadline)
    process.exit(code)
  }
  process.on('SIGINT', () => void stopAll(0))
  process.on('SIGTERM', () => void stopAll(0))

  try {
    // Port 0 in the config means "pick one": the router then gets a copy of the same YAML with
    // the real addresses written over the destinations, every other setting as the user wrote it.
    const yaml = parse(readFileSync(file, 'utf8')) as { pools: Record<string, { shards: Array<{ primary: unknown; replicas?: unknown[] }> }> }
    const flags = values['max-memory'] ? ['--max-memory', values['max-memory']] : []
    const shardConfig = await secureShardConfig(config)
    if (shardConfig) flags.push('--config', shardConfig)
    const groups = Object.entries(config.pools).flatMap(([pool, { shards }]) => shards.map((shard, s) => ({ pool, shard, written: yaml.pools[pool].shards[s] })))
    // Every group is awaited, failed or not, so that none is still starting processes when a
    // failure stops them all.
    const outcomes = await Promise.allSettled(groups.map(async ({ pool, shard, written }) => {
      const started = await startShardGroup({ pool, shard, flags, env, log, children, pickPort: freePort })
      started.forEach((where, d) => {
        if (where && d === 0) written.primary = where
        else if (where) written.replicas![d - 1] = where
      })
    }))
    const failed = outcomes.find((outcome) => outcome.status === 'rejected')
    if (failed) throw failed.reason
    let routerConfig = file
    if (groups.some(({ shard }) => [shard.primary, ...shard.replicas].some(picksPorts))) {
      routerConfig = join(mkdtempSync(join(tmpdir(), 'shardline-cluster-')), 'router.yaml')
      writeFileSync(routerConfig, stringify(yaml))
    }
    const shardCount = children.size
    const router = new SupervisedChild({ name: 'router', args: ['router', '--config', routerConfig], readyLine: ROUTER_READY, env, log })
    children.add(router)
    const [, dataUrl, adminUrl, respAddress] = await router.ready
    console.log(`shardline cluster ready: ${dataUrl} (admin ${adminUrl}${respAddress ? `, resp ${respAddress}` : ''}), ${shardCount} shard processes`)
    const client = clientFlags(config)
    console.log(`  try: curl${client.curl} -XPOST ${dataUrl}/k -H 'content-type: application/json' -d '{"value":"v","ttl":60}'`)
    if (respAddress) console.log(`  or:  redis-cli${client.redisCli} -h ${respAddress.slice(0, respAddress.lastIndexOf(':'))} -p ${respAddress.slice(respAddress.lastIndexOf(':') + 1)} SET k v EX 60`)
  } catch (error) {
    log.error({ error: (error as Error).message }, 'the local cluster did not start')
    await stopAll(1)
  }
}

export interface ShardGroupStart {
  pool: string
  /** The primary and its replicas; those not on loopback run elsewhere and are not started. */
  shard: ShardConfig
  /** Flags every shard process gets (--max-memory). */
  flags: string[]
  env: NodeJS.ProcessEnv
  log: Logger
  /** Every process started and not given up on, so that a stop reaches it. */
  children: Set<SupervisedChild>
  /** A port free on host right now, for a destination whose port is 0. */
  pickPort(host: string): Promise<number>
}

/** Where a started destination listens, as host:port; null for one this cluster does not run. */
export type StartedDestination = { address: string; admin: string } | null

/**
 * Starts a primary and its replicas, which name each other's data ports on their command lines
 * (--replicas, --replicaof): so those ports are picked before any of them starts, and another
 * process can take one in between (any program on the machine binding port 0, or connecting
 * out). A group whose start fails on a port it picked is stopped and started again on newly
 * picked ports, up to PORT_ATTEMPTS times; any other failure, a port the config fixes among
 * them, fails at once. Resolves with where each destination listens, in the order primary first.
 */
export async function startShardGroup(group: ShardGroupStart): Promise<StartedDestination[]> {
  const destinations = [group.shard.primary, ...group.shard.replicas]
  const names = [group.shard.name, ...group.shard.replicas.map((_, r) => `${group.shard.name}.replica${r + 1}`)]
  for (let attempt = 1; ; attempt++) {
    const picked = new Set<number>()
    const dataPorts: number[] = []
    for (const destination of destinations) {
      const port = destination.address.port === 0 && LOOPBACK.test(destination.address.host) ? await group.pickPort(destination.address.host) : destination.address.port
      if (port !== destination.address.port) picked.add(port)
      dataPorts.push(port)
    }
    const dataAddresses = destinations.map((destination, d) => `${destination.address.host}:${dataPorts[d]}`)
    const started = destinations.map((destination, d) => {
      if (!LOOPBACK.test(destination.address.host)) return null
      const args = ['shard', '--name', names[d], '--host', destination.address.host, '--port', String(dataPorts[d]), '--admin-port', String(destination.admin?.port ?? 0), ...group.flags]
      if (d === 0 && dataAddresses.length > 1) args.push('--replicas', dataAddresses.slice(1).join(','))
      if (d > 0) args.push('--replicaof', dataAddresses[0])
      const child = new SupervisedChild({ name: `${group.pool}/${names[d]}`, args, readyLine: SHARD_READY, env: group.env, log: group.log })
      group.children.add(child)
      return child
    })
    const outcomes = await Promise.allSettled(started.map((child) => child?.ready))
    const failure = outcomes.find((outcome) => outcome.status === 'rejected')
    if (failure === undefined) {
      return started.map((child, d) => {
        if (child === null) return null
        const [, host, port, adminHost, adminPort] = (outcomes[d] as PromiseFulfilledResult<RegExpExecArray>).value
        // A restart must come back on the admin port the router's config now names.
        child.args = child.args.map((arg, i) => (child.args[i - 1] === '--admin-port' ? adminPort : arg))
        return { address: `${host}:${port}`, admin: `${adminHost}:${adminPort}` }
      })
    }
    await Promise.all(started.map(async (child) => {
      if (child === null) return
      group.children.delete(child)
      await child.stop('SIGTERM')
    }))
    const error = failure.reason as Error
    const taken = error instanceof ChildStartError ? ADDRESS_IN_USE.exec(error.output) : null
    if (taken === null) throw error
    if (!picked.has(Number(taken[2]))) throw new Error(`${error.message}: ${taken[1]}:${taken[2]} is in use by another process`)
    if (attempt === PORT_ATTEMPTS) {
      throw new Error(`shard ${group.pool}/${group.shard.name}: another process took a port picked for it before it could listen, ${PORT_ATTEMPTS} times (last ${taken[1]}:${taken[2]})`)
    }
    group.log.warn({ shard: `${group.pool}/${group.shard.name}`, port: Number(taken[2]), attempt }, 'another process took a port picked for the shard before it could listen; starting its group again on new ports')
  }
}

/** Fails with SecretSet's own message ("environment variable … is not set") for a secret the environment lacks. */
function checkSecrets(config: RouterConfig): void {
  const sets: Array<[string, SecretSource[]]> = config.tenants.map((tenant) => [`tenants.${tenant.name}.tokens`, tenant.tokens])
  if (config.shardAccess.password !== null) sets.push(['shardAccess.password', [config.shardAccess.password]])
  for (const [name, sources] of sets) new SecretSet(name, sources).close()
}

/** True for a file under .shardline/tls/ of the working directory: one the cluster makes. */
function isLocalTlsFile(file: string): boolean {
  return !relative(resolve(LOCAL_TLS_DIR), resolve(file)).startsWith('..')
}

/**
 * For a config whose router reaches shards with a password or over TLS: makes the local
 * certificates it names and lacks, and writes the shards' config (in a temp dir), in which the
 * router's shardAccess.password is the shards' internal password and the router's certificate
 * theirs, with replication links verified against the same CA. Null for an open config.
 */
async function secureShardConfig(config: RouterConfig): Promise<string | null> {
  const { password, tls: access } = config.shardAccess
  const named = [config.tls?.cert, config.tls?.key, config.tls?.clientCa, access?.ca, access?.cert, access?.key].filter((file) => file !== undefined)
  const local = named.some((file) => isLocalTlsFile(file) && !existsSync(file)) ? await ensureLocalTls(LOCAL_TLS_DIR) : null
  if (password === null && access === null) return null
  const served = config.tls ?? (local && { cert: local.cert, key: local.key })
  if (access !== null && !served) throw new Error(`${config.file}: shardAccess.tls needs certificates for the shards to serve: give the router a tls section (its certificate serves the shards too)`)
  const shard = {
    ...(password !== null ? { auth: { internalPasswords: [password] } } : {}),
    ...(access !== null ? { tls: { cert: resolve(served!.cert), key: resolve(served!.key), peers: { ...access, ca: resolve(access.ca), ...(access.cert ? { cert: resolve(access.cert), key: resolve(access.key!) } : {}) } } } : {}),
  }
  const file = join(mkdtempSync(join(tmpdir(), 'shardline-cluster-')), 'shard.yaml')
  // A password written as text in the router's config is in this file too: only the owner reads it.
  writeFileSync(file, stringify(shard), { mode: 0o600 })
  return file
}

/** The curl and redis-cli flags the "try:" lines need: the CA to trust and a token that may write. */
function clientFlags(config: RouterConfig): { curl: string; redisCli: string } {
  let curl = ''
  let redisCli = ''
  if (config.tls) {
    const ca = isLocalTlsFile(config.tls.cert) ? join(LOCAL_TLS_DIR, 'ca.pem') : '<the CA of your certificate>'
    curl += ` --cacert ${ca}`
    redisCli += ` --tls --cacert ${ca}`
  }
  const writer = config.tenants.find((tenant) => tenant.permissions.includes('write'))
  if (writer) {
    const env = writer.tokens.find((token): token is { env: string } => typeof token === 'object' && 'env' in token)
    const token = env ? `$${env.env}` : `<a token of ${writer.name}>`
    curl += ` -H "Authorization: Bearer ${token}"`
    redisCli += ` --user ${writer.name} --pass "${token}"`
  }
  return { curl, redisCli }
}

/** A destination whose real address only the start tells: a loopback port 0, data or admin. */
function picksPorts(destination: DestinationConfig): boolean {
  return LOOPBACK.test(destination.address.host) && (destination.address.port === 0 || destination.admin?.port === 0)
}

/** A port the kernel says is free now; another process may take it before the shard binds it. */
export async function freePort(host: string): Promise<number> {
  const server = net.createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}
