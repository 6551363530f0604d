// scripts/render-router-config.ts: the router config helm/shardline renders ("shardline.routerConfig"
// in templates/_helpers.tpl, with the region settings) for the chart's values, without Helm: for tests and to check a values file.
//
//   npx node scripts/render-router-config.ts [-f values.yaml]... [--release shardline] [--namespace default]
//       [--listen-data host:port] [--listen-admin host:port]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parse, stringify } from 'yaml'

export const CHART_DIR = fileURLToPath(new URL('../helm/shardline/', import.meta.url))
const CHART_NAME = 'shardline'

type Values = Record<string, unknown>
interface PoolValues {
  shards: number
  drainingShards?: number
  standbyShards?: number
  replicasPerShard: number
  hotKeys?: Values
  region?: string
}

/** Where the chart mounts the auth Secret and the TLS Secret ("shardline.authDir", "shardline.tlsDir"). */
const AUTH_DIR = '/var/run/shardline/auth'
const TLS_DIR = '/var/run/shardline/tls'
/** Where the routers mount region.passwords ("shardline.regionDir"). */
const REGION_DIR = '/var/run/shardline/region'

const isMap = (value: unknown): value is Values => typeof value === 'object' && value !== null && !Array.isArray(value)

/** Helm's coalescing of values files: maps merge key by key, anything else replaces, null deletes. */
export function mergeValues(base: Values, override: Values): Values {
  const out: Values = structuredClone(base)
  for (const [key, value] of Object.entries(override)) {
    if (value === null) delete out[key]
    else if (isMap(value) && isMap(out[key])) out[key] = mergeValues(out[key] as Values, value)
    else out[key] = structuredClone(value)
  }
  return out
}

/** The chart's values.yaml with each file merged over it in order, as `helm -f a -f b` does. */
export function loadChartValues(files: string[] = []): Values {
  let values = parse(readFileSync(`${CHART_DIR}values.yaml`, 'utf8')) as Values
  for (const file of files) values = mergeValues(values, (parse(readFileSync(file, 'utf8')) ?? {}) as Values)
  return values
}

const trunc63 = (text: string) => text.slice(0, 63).replace(/-+$/, '')

/** "shardline.fullname" in _helpers.tpl. */
export function chartFullname(values: Values, release: string): string {
  if (values.fullnameOverride) return trunc63(String(values.fullnameOverride))
  const name = (values.nameOverride as string) || CHART_NAME
  return trunc63(release.includes(name) ? release : `${release}-${name}`)
}

/** The config object the chart's ConfigMap holds as router.yaml. */
export function renderRouterConfig(values: Values, options: { release: string; namespace: string }): Values {
  const fullname = chartFullname(values, options.release)
  const router = values.router as Values
  const shard = values.shard as { port: number; adminPort: number }
  const pools: Values = {}
  for (const [poolName, pool] of Object.entries(values.pools as Record<string, PoolValues>)) {
    const setName = (index: number) => {
      const name = `${fullname}-${poolName}-s${index}`
      if (name.length > 52) throw new Error(`shard StatefulSet name ${name} is longer than 52 characters: shorten the release name, fullnameOverride or the pool's name`)
      return name
    }
    const draining = pool.drainingShards ?? 0
    const standby = pool.standbyShards ?? 0
    const listed = pool.shards - standby
    if (draining + standby >= pool.shards) throw new Error(`pools.${poolName}.drainingShards (${draining}) + standbyShards (${standby}) must be less than pools.${poolName}.shards (${pool.shards}): a pool needs at least one shard that owns keys`)
    pools[poolName] = {
      shards: Array.from({ length: listed }, (_, index) => {
        const destinations = Array.from({ length: 1 + pool.replicasPerShard }, (_, ordinal) => {
          const host = `${setName(index)}-${ordinal}.${fullname}-shards.${options.namespace}.svc.${values.clusterDomain}`
          return { address: `${host}:${shard.port}`, admin: `${host}:${shard.adminPort}` }
        })
        return { name: `s${index}`, primary: destinations[0], replicas: destinations.slice(1), ...(index >= listed - draining ? { draining: true } : {}) }
      }),
      ...(pool.hotKeys ? { hotKeys: structuredClone(pool.hotKeys) } : {}),
      ...(poolRegionMode(values, poolName) !== 'none' ? { region: pool.region } : {}),
    }
  }
  const config: Values = {
    listen: { data: `0.0.0.0:${router.port}`, admin: `0.0.0.0:${router.adminPort}`, ...(router.respPort ? { resp: `0.0.0.0:${router.respPort}` } : {}) },
    pools,
    routes: values.routes,
    defaultPool: values.defaultPool,
    workers: router.workers,
    ...securityConfig(values),
    ...regionConfig(values),
  }
  return mergeValues(mergeValues(config, router.config as Values), router.extraConfig as Values)
}

/** Tenants with their token files, the shard password and the TLS files, as auth and tls turn them on. */
function securityConfig(values: Values): Values {
  const auth = values.auth as { enabled: boolean; tenants: Values[]; metrics: string }
  const tls = values.tls as { enabled: boolean; minVersion: string }
  const config: Values = {}
  const shardAccess: Values = {}
  if (auth.enabled) {
    config.tenants = auth.tenants.map((tenant) => ({ ...structuredClone(tenant), tokens: [{ file: `${AUTH_DIR}/token-${tenant.name}` }] }))
    config.admin = { metrics: auth.metrics }
    shardAccess.password = { file: `${AUTH_DIR}/shard-password` }
  }
  if (tls.enabled) {
    config.tls = { cert: `${TLS_DIR}/tls.crt`, key: `${TLS_DIR}/tls.key`, minVersion: tls.minVersion }
    shardAccess.tls = { ca: `${TLS_DIR}/ca.crt` }
  }
  if (Object.keys(shardAccess).length > 0) config.shardAccess = shardAccess
  return config
}

/** "shardline.poolRegionMode": a pool's mode, with the chart's checks of the region settings. */
function poolRegionMode(values: Values, poolName: string): string {
  const region = values.region as { name: string; passwords: { existingSecret: string } }
  const mode = (values.pools as Record<string, PoolValues>)[poolName].region || 'none'
  if (mode !== 'none' && !region.name) throw new Error(`pools.${poolName}.region is ${mode}: set region.name and region.id (this release's region)`)
  if (region.name && !(values.router as Values).respPort) throw new Error('region.name needs router.respPort: the peer regions\' shards ship to the routers\' RESP port')
  if (region.name && (values.auth as Values).enabled && !region.passwords.existingSecret) throw new Error('region.name with auth.enabled needs region.passwords.existingSecret: routers with tenants refuse the peer regions\' shards unless they present a region password')
  return mode
}

/** This release's region, and the file of the password peer regions' shards present, when region.name is set. */
function regionConfig(values: Values): Values {
  const region = values.region as { name: string; id: number; passwords: { existingSecret: string } }
  if (!region.name) return {}
  return { region: { name: region.name, id: region.id, ...(region.passwords.existingSecret ? { passwords: [{ file: `${REGION_DIR}/password` }] } : {}) } }
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      values: { type: 'string', short: 'f', multiple: true },
      release: { type: 'string', default: CHART_NAME },
      namespace: { type: 'string', default: 'default' },
      'listen-data': { type: 'string' },
      'listen-admin': { type: 'string' },
    },
    strict: true,
  })
  const config = renderRouterConfig(loadChartValues(values.values ?? []), { release: values.release!, namespace: values.namespace! })
  const listen = config.listen as { data: string; admin: string }
  if (values['listen-data']) listen.data = values['listen-data']
  if (values['listen-admin']) listen.admin = values['listen-admin']
  process.stdout.write(stringify(config))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`render-router-config: ${(error as Error).message}`)
    process.exit(2)
  })
}
