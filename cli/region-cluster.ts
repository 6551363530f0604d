// A local cluster of several regions (config/regions.yaml): the file's format, its checks across
// regions, and the region settings each region's shards get, derived from the other regions' routers.
import { parse, stringify } from 'yaml'
import { REGION_NAME_PATTERN, type RegionMode } from '../common/region.ts'
import type { SecretSource } from '../common/secrets.ts'
import type { ClientTlsFiles } from '../common/tls-files.ts'
import { ConfigError } from '../common/validate.ts'
import { parseRouterConfig, type RouterConfig } from '../router/config.ts'

/** A router config as written, which the cluster copies with the real ports filled in. */
export type RouterYaml = Record<string, unknown> & { listen?: Record<string, string>; pools: Record<string, { shards: Array<{ primary: unknown; replicas?: unknown[] }> }> }

export interface RegionSpec {
  name: string
  config: RouterConfig
  yaml: RouterYaml
}

/** A shard's region section as its config file takes it (shard/config.ts fills in the rest). */
export interface ShardRegionSettings {
  name: string
  id: number
  pool: string
  mode: RegionMode
  peers: Array<{ name: string; router: string; password?: SecretSource; tls?: ClientTlsFiles }>
}

export interface RegionsFile {
  regions: RegionSpec[]
  /** Shard config settings every shard of every region gets (shard/config.ts). */
  shard: Record<string, unknown>
}

const isMapping = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** True for a file of regions (a top-level `regions:`); any other is one region's router config. */
export function isRegionsFile(text: string): boolean {
  try {
    const data: unknown = parse(text)
    return isMapping(data) && 'regions' in data
  } catch {
    // A file that does not parse is left to the router config's loader, whose error names the line.
    return false
  }
}

/** Parses and checks a regions file: each region's router config by the router's own loader, then what regions must agree on. */
export function parseRegionsFile(text: string, file: string): RegionsFile {
  const data: unknown = parse(text)
  if (!isMapping(data) || !isMapping(data.regions) || Object.keys(data.regions).length === 0) throw new ConfigError(`${file}: regions: must map each region's name to its router config`)
  const unknown = Object.keys(data).filter((key) => key !== 'regions' && key !== 'shard')
  if (unknown.length > 0) throw new ConfigError(`${file}: ${unknown.join(', ')}: not a known setting (a regions file has regions: and shard:)`)
  if (data.shard !== undefined && !isMapping(data.shard)) throw new ConfigError(`${file}: shard: must be a mapping of shard settings`)
  const shard = (data.shard ?? {}) as Record<string, unknown>
  if ('region' in shard) throw new ConfigError(`${file}: shard.region: is derived for each shard from its region's router config; leave it out`)
  const regions = Object.entries(data.regions).map(([name, yaml]): RegionSpec => {
    const where = `${file} regions.${name}`
    if (!new RegExp(REGION_NAME_PATTERN).test(name)) throw new ConfigError(`${where}: a region's name must be 1-32 of a-z, 0-9 and -, starting with a letter or digit`)
    if (!isMapping(yaml)) throw new ConfigError(`${where}: must be a router config`)
    const config = routerConfig(yaml, where)
    if (config.region === null) throw new ConfigError(`${where}: needs region: {name: ${name}, id: <0-15, unique among the regions>}`)
    if (config.region.name !== name) throw new ConfigError(`${where}: region.name is ${config.region.name}, not ${name}`)
    return { name, config, yaml: yaml as RouterYaml }
  })
  checkAcrossRegions(regions, file)
  return { regions, shard }
}

/** A region's router config through the router's own loader; its errors name the region (their line numbers would be of a copy: dropped). */
function routerConfig(yaml: Record<string, unknown>, where: string): RouterConfig {
  try {
    return parseRouterConfig(stringify(yaml), where)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    throw new ConfigError(error.message.split('\n').map((line) => (line.startsWith(`${where}:`) ? `${where}${line.slice(where.length).replace(/^:\d+/, '')}` : line)).join('\n'))
  }
}

function checkAcrossRegions(regions: RegionSpec[], file: string): void {
  const ids = new Map<number, string>()
  for (const { name, config } of regions) {
    const other = ids.get(config.region!.id)
    if (other !== undefined) throw new ConfigError(`${file}: regions ${other} and ${name} both have region.id ${config.region!.id}: each region needs its own, so that their versions never tie`)
    ids.set(config.region!.id, name)
    if (regions.length > 1 && config.listen.resp === undefined) throw new ConfigError(`${file} regions.${name}: needs listen.resp: the other regions' shards ship to its RESP port`)
  }
  for (const region of regions) {
    for (const [pool, { region: mode }] of Object.entries(region.config.pools)) {
      if (mode === 'none') continue
      for (const peer of regions) {
        if (peer === region) continue
        const accepted = peer.config.pools[pool]?.region ?? 'none'
        if (accepted === 'none') throw new ConfigError(`${file} regions.${peer.name}.pools.${pool}: ${region.name} ships pool ${pool} (${mode}) to ${peer.name}, which ${peer.config.pools[pool] ? 'takes no region writes for it (region: none)' : 'has no such pool'}`)
      }
    }
  }
}

/**
 * The region section of the shards of one pool of one region: the pool's mode, and every other
 * region's router as a peer, with the first of its region passwords and the TLS to reach it.
 */
export function shardRegionSettings(regions: RegionSpec[], region: RegionSpec, pool: string, peerTls: (peer: RegionSpec) => ClientTlsFiles | null): ShardRegionSettings {
  const { name, id } = region.config.region!
  const peers = regions.filter((peer) => peer !== region).map((peer) => {
    const resp = peer.config.listen.resp!
    const password = peer.config.region!.passwords[0]
    if (password === undefined && peer.config.tenants.length > 0) throw new ConfigError(`regions.${peer.name}: has tenants, so it refuses other regions' shards unless they present a region password: set region.passwords`)
    if (typeof password === 'string' && password.startsWith('sha256:')) throw new ConfigError(`regions.${peer.name}.region.passwords[0]: the other regions' shards present it, so it must be the password itself ({env: NAME}, {file: path} or text), not its hash`)
    const tls = peerTls(peer)
    return { name: peer.name, router: `${resp.host}:${resp.port}`, ...(password !== undefined ? { password } : {}), ...(tls ? { tls } : {}) }
  })
  return { name, id, pool, mode: region.config.pools[pool].region, peers }
}
