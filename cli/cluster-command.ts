// `shardline cluster --config <file>`: the local cluster. Starts a shard process for every
// loopback destination in a router config, then the router; restarts any that dies; stops them all.
// A secured config (tls, shardAccess) gets throwaway certificates and shards that ask for its password;
// a regions file (config/regions.yaml, cli/region-cluster.ts) runs a router and its shards per region.
import { once } from 'node:events'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parse, stringify } from 'yaml'
import { createLogger, type Logger } from '../common/logger.ts'
import { SecretSet, type SecretSource } from '../common/secrets.ts'
import type { ClientTlsFiles } from '../common/tls-files.ts'
import { ConfigError } from '../common/validate.ts'
import { formatEndpoint, loadRouterConfig, readConfigText, type DestinationConfig, type Endpoint, type RouterConfig, type ShardConfig } from '../router/config.ts'
import { loadShardConfig } from '../shard/config.ts'
import { ChildStartError, SupervisedChild } from './child-process.ts'
import { ensureLocalTls } from './local-tls.ts'
import { isRegionsFile, parseRegionsFile, shardRegionSettings, type RegionSpec, type RouterYaml } from './region-cluster.ts'

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
  const text = readConfigText(file)
  const regionsFile = isRegionsFile(text) ? parseRegionsFile(text, file) : null
  // Port 0 in the config means "pick one": a router then gets a copy of the same YAML with the
  // real addresses written over the destinations, every other setting as the user wrote it.
  const regions: ClusterRegion[] = regionsFile
    ? regionsFile.regions.map((region) => ({ label: region.name, config: region.config, yaml: region.yaml, file: null, spec: region }))
    : [{ label: null, config: loadRouterConfig(file), yaml: parse(text) as RouterYaml, file, spec: null }]
  const log = createLogger('cluster')
  // A token or password missing from the environment would otherwise stop the router only after
  // every shard started: say it before anything starts.
  for (const { config } of regions) checkSecrets(config)
  const env = { ...process.env, SHARDLINE_LOG_FORMAT: process.stdout.isTTY ? 'pretty' : (process.env.SHARDLINE_LOG_FORMAT ?? 'json') }
  const children = new Set<SupervisedChild>()
  const routers = new Set<SupervisedChild>()
  let stopping = false
  const stopAll = async (code: number) => {
    if (stopping) return
    stopping = true
    const deadline = setTimeout(() => children.forEach((child) => child.kill('SIGKILL')), STOP_DEADLINE_MS)
    // The routers drain first, so requests in flight still find their shards.
    const shards = [...children].filter((child) => !routers.has(child))
    for (const group of [[...routers], shards]) await Promise.all(group.map((child) => child.stop('SIGTERM')))
    clearTimeout(deadline)
    process.exit(code)
  }
  process.on('SIGINT', () => void stopAll(0))
  process.on('SIGTERM', () => void stopAll(0))

  try {
    const flags = values['max-memory'] ? ['--max-memory', values['max-memory']] : []
    const files = new TempFiles()
    const security = new Map<ClusterRegion, Record<string, unknown> | null>()
    for (const region of regions) security.set(region, await secureShardSettings(region.config))
    // The other regions' shards name a router's RESP address at their start, and a restarted router
    // must come back on it: so a router's ports are picked before anything starts, and kept.
    if (regionsFile) for (const region of regions) await pinRouterPorts(region)
    const shardFlags = (region: ClusterRegion, pool: string): string[] => {
      const settings = {
        ...regionsFile?.shard,
        ...security.get(region),
        ...(regionsFile ? { region: shardRegionSettings(regionsFile.regions, region.spec!, pool, peerTls) } : {}),
      }
      if (Object.keys(settings).length === 0) return []
      const shardConfig = files.write('shard', stringify(settings))
      // Settings the shards would refuse stop the cluster here, before any process starts.
      if (regionsFile) loadShardConfig(['--config', shardConfig])
      return ['--config', shardConfig]
    }
    const groups = regions.flatMap((region) => Object.entries(region.config.pools).flatMap(([pool, { shards }]) => shards.map((shard, s) => ({ region, pool, shard, flags: [...flags, ...shardFlags(region, pool)], written: region.yaml.pools[pool].shards[s] }))))
    const shardCounts = new Map<ClusterRegion, number>()
    // Every group is awaited, failed or not, so that none is still starting processes when a
    // failure stops them all.
    const outcomes = await Promise.allSettled(groups.map(async ({ region, pool, shard, flags, written }) => {
      const started = await startShardGroup({ pool: region.label ? `${region.label}/${pool}` : pool, shard, flags, env, log, children, pickPort: freePort })
      started.forEach((where, d) => {
        if (where && d === 0) written.primary = where
        else if (where) written.replicas![d - 1] = where
      })
      shardCounts.set(region, (shardCounts.get(region) ?? 0) + started.filter((where) => where !== null).length)
    }))
    const failed = outcomes.find((outcome) => outcome.status === 'rejected')
    if (failed) throw failed.reason
    const ready = await Promise.all(regions.map(async (region) => {
      const picked = groups.some((group) => group.region === region && [group.shard.primary, ...group.shard.replicas].some(picksPorts))
      const routerConfig = region.file !== null && !picked ? region.file : files.write(region.label ?? 'router', stringify(region.yaml))
      const router = new SupervisedChild({ name: region.label ? `${region.label}/router` : 'router', args: ['router', '--config', routerConfig], readyLine: ROUTER_READY, env, log })
      children.add(router)
      routers.add(router)
      return router.ready
    }))
    regions.forEach((region, r) => {
      const [, dataUrl, adminUrl, respAddress] = ready[r]
      console.log(`shardline cluster ${region.label ? `region ${region.label} ` : ''}ready: ${dataUrl} (admin ${adminUrl}${respAddress ? `, resp ${respAddress}` : ''}), ${shardCounts.get(region) ?? 0} shard processes`)
      const client = clientFlags(region.config)
      console.log(`  try: curl${client.curl} -XPOST ${dataUrl}/k -H 'content-type: application/json' -d '{"value":"v","ttl":60}'`)
      if (respAddress) console.log(`  or:  redis-cli${client.redisCli} -h ${respAddress.slice(0, respAddress.lastIndexOf(':'))} -p ${respAddress.slice(respAddress.lastIndexOf(':') + 1)} SET k v EX 60`)
    })
    if (regionsFile) console.log(`shardline cluster ready: regions ${regions.map((region) => region.label).join(', ')}: a key written through one region's router is read through the others' (curl ${ready.map(([, dataUrl]) => `${dataUrl}/k`).join(', ')})`)
  } catch (error) {
    log.error({ error: (error as Error).message }, 'the local cluster did not start')
    await stopAll(1)
  }
}

/** One router and its shards: the whole cluster, or one region of a regions file. */
interface ClusterRegion {
  /** The region's name, prefixed to its processes' names; null for a single router config. */
  label: string | null
  config: RouterConfig
  /** The config as written, into which the real ports go. */
  yaml: RouterYaml
  /** The user's file, which the router reads (and reloads) itself when no port had to be filled in. */
  file: string | null
  /** The region as the regions file gives it (its peers are the file's other regions); null for a single router config. */
  spec: RegionSpec | null
}

/**
 * Files the cluster writes for its processes, in one temp dir; the same content is written once.
 * A password written as text in a router's config is in them too: only the owner reads them.
 */
class TempFiles {
  private dir: string | null = null
  private readonly written = new Map<string, string>()

  write(name: string, text: string): string {
    const existing = this.written.get(text)
    if (existing !== undefined) return existing
    this.dir ??= mkdtempSync(join(tmpdir(), 'shardline-cluster-'))
    const file = join(this.dir, `${name}-${this.written.size}.yaml`)
    writeFileSync(file, text, { mode: 0o600 })
    this.written.set(text, file)
    return file
  }
}

/** Picks the ports of a region's router that are 0 on loopback, in its config and the YAML it will read. */
async function pinRouterPorts(region: ClusterRegion): Promise<void> {
  const listen = region.config.listen as Record<string, Endpoint | undefined>
  for (const [key, endpoint] of Object.entries(listen)) {
    if (endpoint === undefined || endpoint.port !== 0 || !LOOPBACK.test(endpoint.host)) continue
    endpoint.port = await freePort(endpoint.host)
    region.yaml.listen = { ...region.yaml.listen, [key]: formatEndpoint(endpoint) }
  }
}

/** How a shard reaches a peer region's router: over TLS verified by the local CA when that router serves the local certificate. */
function peerTls(peer: RegionSpec): ClientTlsFiles | null {
  if (peer.config.tls === null) return null
  if (!isLocalTlsFile(peer.config.tls.cert)) throw new ConfigError(`regions.${peer.name}: serves TLS with a certificate of yours; shardline cluster gives the other regions' shards only the local CA (${LOCAL_TLS_DIR}/ca.pem): use the local certificates (as config/secure.yaml does)`)
  return { ca: resolve(LOCAL_TLS_DIR, 'ca.pem') }
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
  if (config.region && config.region.passwords.length > 0) sets.push(['region.passwords', config.region.passwords])
  for (const [name, sources] of sets) new SecretSet(name, sources).close()
}

/** True for a file under .shardline/tls/ of the working directory: one the cluster makes. */
function isLocalTlsFile(file: string): boolean {
  return !relative(resolve(LOCAL_TLS_DIR), resolve(file)).startsWith('..')
}

/**
 * For a config whose router reaches shards with a password or over TLS: makes the local
 * certificates it names and lacks, and returns the shards' settings, in which the router's
 * shardAccess.password is the shards' internal password and the router's certificate theirs,
 * with replication links verified against the same CA. Null for an open config.
 */
async function secureShardSettings(config: RouterConfig): Promise<Record<string, unknown> | null> {
  const { password, tls: access } = config.shardAccess
  const named = [config.tls?.cert, config.tls?.key, config.tls?.clientCa, access?.ca, access?.cert, access?.key].filter((file) => file !== undefined)
  const local = named.some((file) => isLocalTlsFile(file) && !existsSync(file)) ? await ensureLocalTls(LOCAL_TLS_DIR) : null
  if (password === null && access === null) return null
  const served = config.tls ?? (local && { cert: local.cert, key: local.key })
  if (access !== null && !served) throw new Error(`${config.file}: shardAccess.tls needs certificates for the shards to serve: give the router a tls section (its certificate serves the shards too)`)
  return {
    ...(password !== null ? { auth: { internalPasswords: [password] } } : {}),
    ...(access !== null ? { tls: { cert: resolve(served!.cert), key: resolve(served!.key), peers: { ...access, ca: resolve(access.ca), ...(access.cert ? { cert: resolve(access.cert), key: resolve(access.key!) } : {}) } } } : {}),
  }
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
