// Where a direct-mode client's route tree comes from: a router's GET /admin/topology (refreshed on a timer,
// followed when its config changes; with the router's open migration windows) or a router config file, both checked by the router's own config parser.
import { Agent, fetch } from 'undici'
import type { Logger } from '../common/logger.ts'
import { compileSchema, validateOrThrow } from '../common/validate.ts'
import { loadRouterConfig, parseRouterConfig, type RouterConfig } from '../router/config.ts'
import { MAX_PREVIOUS_RINGS } from '../router/migration-window.ts'
import { checkWholeNumber } from './arguments.ts'
import { ShardlineError, type TopologySource } from './types.ts'

/** A pool's open migration window as its router has it (router/admin.ts openMigrations). */
export interface OpenMigration {
  msLeft: number
  /** Newest first. */
  previousRings: { shards: string[]; pointsPerShard: number }[]
}

/** A route tree's description: the router's config (its routing part), the generation it had, its open migration windows. */
export interface Topology {
  /** The router's config generation; 1 for a config file. */
  generation: number
  config: RouterConfig
  /** By pool; none from a config file. */
  migrations: Record<string, OpenMigration>
}

const validateMigrations = compileSchema<Record<string, OpenMigration>>({
  type: 'object',
  additionalProperties: {
    type: 'object',
    additionalProperties: false,
    required: ['msLeft', 'previousRings'],
    properties: {
      msLeft: { type: 'integer', minimum: 0 },
      previousRings: {
        type: 'array',
        maxItems: MAX_PREVIOUS_RINGS,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['shards', 'pointsPerShard'],
          properties: {
            shards: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' } },
            pointsPerShard: { type: 'integer', minimum: 1, maximum: 100000 },
          },
        },
      },
    },
  },
})

export const DEFAULT_REFRESH_MS = 5000
const REFRESH_RANGE_MS = { min: 100, max: 3_600_000 }

type CheckedSource = { adminUrl: string; refreshMs: number } | { configFile: string }

/** The topology option, checked: exactly one of adminUrl (http or https) and configFile. */
export function checkTopologySource(source: TopologySource): CheckedSource {
  const invalid = (message: string) => new ShardlineError('invalid_argument', `topology: ${message}`)
  if (typeof source !== 'object' || source === null) throw invalid('must be { adminUrl } or { configFile }')
  const given = source as { adminUrl?: unknown; configFile?: unknown; refreshMs?: unknown }
  if ((given.adminUrl === undefined) === (given.configFile === undefined)) throw invalid('give either adminUrl (a router\'s admin URL) or configFile (a router config file)')
  if (given.configFile !== undefined) {
    if (typeof given.configFile !== 'string' || given.configFile === '') throw invalid('configFile must be a file path')
    return { configFile: given.configFile }
  }
  if (typeof given.adminUrl !== 'string' || !URL.canParse(given.adminUrl) || !/^https?:$/.test(new URL(given.adminUrl).protocol)) {
    throw invalid(`adminUrl must be an http(s) URL such as http://router:9090, not ${JSON.stringify(given.adminUrl)}`)
  }
  const refreshMs = checkWholeNumber('topology: refreshMs', given.refreshMs, REFRESH_RANGE_MS.min, REFRESH_RANGE_MS.max, DEFAULT_REFRESH_MS)
  return { adminUrl: given.adminUrl.replace(/\/+$/, ''), refreshMs }
}

export interface TopologyFeedOptions {
  source: TopologySource
  /** How long one GET /admin/topology may take. */
  fetchTimeoutMs: number
  /** Sent as Authorization: Bearer (a router with tenants serves its topology to admin tenants only). */
  token?: string
  /** The CA that signed an https router's certificate. */
  ca?: string | Buffer
  log: Logger
  /** Told of every refreshed topology whose config differs from the one before. */
  onChange(topology: Topology): void
}

/**
 * The topology a client routes by: loaded on first use (again on the next use, after a failure),
 * then, from an admin URL, fetched every refreshMs. A refresh that fails keeps the current topology
 * and is tried again at the next tick; it is logged once per outage, not once per try.
 */
export class TopologyFeed {
  private readonly source: CheckedSource
  private readonly options: TopologyFeedOptions
  private readonly router: RouterAccess
  private loaded: Topology | null = null
  private loading: Promise<Topology> | null = null
  /** The current config as fetched, to tell a changed config from a new generation of the same one. */
  private configText = ''
  private timer: NodeJS.Timeout | null = null
  private failedRefreshes = 0
  private closed = false

  constructor(options: TopologyFeedOptions) {
    this.source = checkTopologySource(options.source)
    this.options = options
    this.router = {
      headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      dispatcher: options.ca === undefined ? undefined : new Agent({ connect: { ca: options.ca } }),
    }
  }

  /** The generation of the topology in use (0 before the first load). */
  get generation(): number {
    return this.loaded?.generation ?? 0
  }

  first(): Promise<Topology> {
    if (this.loaded) return Promise.resolve(this.loaded)
    this.loading ??= this.load().then((topology) => {
      this.loaded = topology
      this.scheduleRefresh()
      return topology
    }).finally(() => {
      this.loading = null
    })
    return this.loading
  }

  close(): void {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    void this.router.dispatcher?.close()
  }

  private async load(): Promise<Topology> {
    if ('configFile' in this.source) {
      try {
        return { generation: 1, config: loadRouterConfig(this.source.configFile), migrations: {} }
      } catch (error) {
        throw new ShardlineError('topology_unavailable', (error as Error).message, { cause: error })
      }
    }
    const fetched = await fetchTopology(this.source.adminUrl, this.options.fetchTimeoutMs, this.router)
    const topology = { generation: fetched.generation, config: parseTopologyConfig(fetched.configText, fetched.url), migrations: fetched.migrations }
    this.configText = fetched.configText
    return topology
  }

  private scheduleRefresh(): void {
    const source = this.source
    if (this.closed || !('adminUrl' in source)) return
    this.timer = setTimeout(() => void this.refresh(source), source.refreshMs)
    // The client's connections, not this timer, are what keep a process alive.
    this.timer.unref()
  }

  private async refresh(source: { adminUrl: string }): Promise<void> {
    try {
      const fetched = await fetchTopology(source.adminUrl, this.options.fetchTimeoutMs, this.router)
      if (this.closed) return
      if (fetched.configText === this.configText) {
        // A reload of the same config (or another router behind the same URL): nothing to rebuild.
        this.loaded = { ...this.loaded!, generation: fetched.generation }
      } else {
        const topology = { generation: fetched.generation, config: parseTopologyConfig(fetched.configText, fetched.url), migrations: fetched.migrations }
        this.options.onChange(topology)
        this.loaded = topology
        this.configText = fetched.configText
      }
      if (this.failedRefreshes > 0) this.options.log.info({ adminUrl: source.adminUrl, failedRefreshes: this.failedRefreshes }, 'topology refresh works again')
      this.failedRefreshes = 0
    } catch (error) {
      if (this.failedRefreshes++ === 0) this.options.log.warn({ adminUrl: source.adminUrl, error: (error as Error).message }, 'topology refresh failed: the current route tree keeps serving, and the refresh is retried')
    }
    this.scheduleRefresh()
  }
}

/** How a fetch reaches the router: the token's header, and the dispatcher that trusts its CA. */
interface RouterAccess {
  headers: Record<string, string>
  dispatcher: Agent | undefined
}

interface FetchedTopology {
  url: string
  generation: number
  /** The config part of the document, as text for parseTopologyConfig. */
  configText: string
  migrations: Record<string, OpenMigration>
}

async function fetchTopology(adminUrl: string, timeoutMs: number, router: RouterAccess): Promise<FetchedTopology> {
  const url = `${adminUrl}/admin/topology`
  const unavailable = (message: string, cause?: unknown) => new ShardlineError('topology_unavailable', `${url}: ${message}`, { cause })
  let body: { generation?: unknown; config?: unknown; migrations?: unknown }
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: router.headers, dispatcher: router.dispatcher })
    // The router refused the credentials (a router with tenants serves its topology to admin tokens only).
    if (response.status === 401 || response.status === 403) {
      throw new ShardlineError(response.status === 401 ? 'unauthorized' : 'forbidden', `${url} answered ${response.status}: ${(await response.text()).slice(0, 200)}`, { status: response.status })
    }
    if (!response.ok) throw unavailable(`answered ${response.status}: ${(await response.text()).slice(0, 200)}`)
    body = await response.json() as typeof body
  } catch (error) {
    if (error instanceof ShardlineError) throw error
    throw unavailable(`cannot read the topology (${(error as Error).message})`, error)
  }
  if (!Number.isInteger(body.generation) || typeof body.config !== 'object' || body.config === null) {
    throw unavailable('the answer is not a topology ({"generation": n, "config": {…}}): is this a router\'s admin URL?')
  }
  let migrations: Record<string, OpenMigration>
  try {
    migrations = validateOrThrow(validateMigrations, body.migrations ?? {}, { file: `${url} migrations` })
  } catch (error) {
    throw unavailable(`the topology's migration windows are not valid: ${(error as Error).message}`, error)
  }
  return { url, generation: body.generation as number, configText: asciiJson(body.config), migrations }
}

/**
 * The topology's config, checked as a router checks its config file: JSON is YAML, so the router's
 * own parser reads it (schema, defaults, cross-checks), and its errors name what is wrong.
 */
function parseTopologyConfig(configText: string, url: string): RouterConfig {
  try {
    return parseRouterConfig(configText, url)
  } catch (error) {
    throw new ShardlineError('topology_unavailable', `the topology is not a valid router config: ${(error as Error).message}`, { cause: error })
  }
}

/**
 * JSON text in printable ASCII without "$": every other character as a \u escape (which YAML reads
 * as JSON does), so that the parser's ${ENV} interpolation, already done by the router, finds
 * nothing to replace, and YAML's rules on control and special characters find nothing to refuse.
 */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[^\x20-\x23\x25-\x7e]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
