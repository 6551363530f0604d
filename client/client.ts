// createClient and the client facade over either mode's Transport: checks options and arguments, gives each
// call one signal (the caller's and its timeout), bounds the calls in flight, wraps failures into ShardlineError, closes.
import { HttpError } from '../common/http-errors.ts'
import { checkCa, checkEntries, checkIncrement, checkKey, checkToken, checkTtl, checkWholeNumber, invalidArgument } from './arguments.ts'
import { DirectTransport } from './direct-transport.ts'
import { HttpTransport } from './http-transport.ts'
import { ShardlineError, type CacheValue, type CallOptions, type ClientOptions, type Entry, type GetOptions, type SetOptions, type ShardlineClient, type Transport } from './types.ts'

/** The numeric options with their defaults and ranges (every number has a range). */
const NUMERIC_OPTIONS = {
  // Up to what a timer holds (2^31 - 1 ms, about 24 days).
  timeoutMs: { fallback: 1000, min: 1, max: 2 ** 31 - 1 },
  maxInFlight: { fallback: 10_000, min: 1, max: 10_000_000 },
  connections: { fallback: 16, min: 1, max: 1024 },
  retries: { fallback: 2, min: 0, max: 10 },
} as const

type NumericOption = keyof typeof NUMERIC_OPTIONS

/** The numeric options, checked and defaulted: what each transport is built with. */
type ClientSettings = Record<NumericOption, number>

const KNOWN_OPTIONS = new Set<string>(['url', 'topology', ...Object.keys(NUMERIC_OPTIONS), 'token', 'ca', 'shardAccess'])

/**
 * A client: HTTP mode with `url` (a router), direct mode with `topology`. Synchronous; connections
 * open on first use. Refuses bad options with a ShardlineError whose code is 'invalid_argument'.
 */
export function createClient(options: ClientOptions): ShardlineClient {
  if (options === null || typeof options !== 'object') throw invalidArgument('createClient takes an options object: { url } or { topology }')
  const unknown = Object.keys(options).filter((name) => !KNOWN_OPTIONS.has(name))
  if (unknown.length > 0) throw invalidArgument(`unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; the options are ${[...KNOWN_OPTIONS].join(', ')}`)
  if ((options.url === undefined) === (options.topology === undefined)) {
    throw invalidArgument('give either url (a router, HTTP mode) or topology (direct mode), not both or neither')
  }
  const settings = {} as ClientSettings
  for (const [name, range] of Object.entries(NUMERIC_OPTIONS) as [NumericOption, (typeof NUMERIC_OPTIONS)[NumericOption]][]) {
    settings[name] = checkWholeNumber(name, options[name], range.min, range.max, range.fallback)
  }
  const token = checkToken(options.token)
  const ca = checkCa(options.ca)
  if (options.url !== undefined) {
    if (options.shardAccess !== undefined) throw invalidArgument('shardAccess is for direct mode (topology): in HTTP mode the router reaches the shards')
    const origin = checkRouterUrl(options.url)
    if (ca !== undefined && !origin.startsWith('https:')) throw invalidArgument('ca is for an https url: the router at this url is reached without TLS')
    return new Client(new HttpTransport({ origin, ...settings, token, ca }), settings)
  }
  // Direct mode meets the router only to read the topology from its admin port.
  const adminUrl = (options.topology as { adminUrl?: unknown } | null)?.adminUrl
  if (adminUrl === undefined && (token !== undefined || ca !== undefined)) throw invalidArgument('token and ca are for a router: give them with url or topology.adminUrl, not with topology.configFile')
  if (ca !== undefined && !String(adminUrl).startsWith('https:')) throw invalidArgument('ca is for an https topology.adminUrl: this one is read without TLS')
  return new Client(new DirectTransport({ topology: options.topology!, ...settings, token, ca, shardAccess: options.shardAccess }), settings)
}

/** The router's origin: an http(s) URL with no path, query or credentials (the client owns the paths). */
function checkRouterUrl(url: unknown): string {
  const parsed = typeof url === 'string' && URL.canParse(url) ? new URL(url) : null
  if (parsed === null || !/^https?:$/.test(parsed.protocol)) throw invalidArgument(`url must be an http(s) URL such as http://shardline-router:8080, not ${JSON.stringify(url)}`)
  if (parsed.pathname !== '/' || parsed.search || parsed.hash || parsed.username || parsed.password) {
    throw invalidArgument(`url must be the router's origin (scheme, host and port only), not ${JSON.stringify(url)}`)
  }
  return parsed.origin
}

class Client implements ShardlineClient {
  private readonly transport: Transport
  private readonly settings: ClientSettings
  private inFlight = 0
  private closing: Promise<void> | null = null
  /** Resolved when the last call in flight settles, while close() waits for it. */
  private drained: PromiseWithResolvers<void> | null = null

  constructor(transport: Transport, settings: ClientSettings) {
    this.transport = transport
    this.settings = settings
  }

  async get(key: string, options?: GetOptions): Promise<CacheValue | null> {
    checkKey(key)
    const as = checkReadAs(options)
    const [value] = await this.call(options, (signal) => this.transport.get([key], as, signal))
    return value
  }

  async set(key: string, value: CacheValue, options?: SetOptions): Promise<boolean> {
    checkKey(key)
    const ttlMs = checkTtl(options?.ttl)
    const [stored] = await this.call(options, (signal) => this.transport.set([[key, value]], ttlMs, signal))
    return stored
  }

  async del(key: string, options?: CallOptions): Promise<boolean> {
    checkKey(key)
    return this.call(options, (signal) => this.transport.del(key, signal))
  }

  async mget(keys: readonly string[], options?: GetOptions): Promise<Array<CacheValue | null>> {
    if (!Array.isArray(keys)) throw invalidArgument('mget takes an array of keys')
    keys.forEach(checkKey)
    const as = checkReadAs(options)
    return this.call(options, (signal) => this.transport.get(keys, as, signal))
  }

  async mset(entries: Iterable<Entry> | Record<string, CacheValue>, options?: SetOptions): Promise<boolean[]> {
    const checked = checkEntries(entries)
    const ttlMs = checkTtl(options?.ttl)
    return this.call(options, (signal) => this.transport.set(checked, ttlMs, signal))
  }

  async incr(key: string, by?: number | bigint, options?: CallOptions): Promise<bigint | null> {
    checkKey(key)
    const increment = checkIncrement(by)
    return this.call(options, (signal) => this.transport.incr(key, increment, signal))
  }

  async counter(key: string, options?: CallOptions): Promise<bigint> {
    checkKey(key)
    return this.call(options, (signal) => this.transport.counter(key, signal))
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.inFlight > 0) {
        this.drained = Promise.withResolvers()
        await this.drained.promise
      }
      await this.transport.close()
    })()
    return this.closing
  }

  /** Runs one call under its signal, counted in flight; every failure leaves as a ShardlineError. */
  private async call<T>(options: CallOptions | undefined, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const { signal: callerSignal, timeoutMs } = checkCallOptions(options, this.settings.timeoutMs)
    if (this.closing) throw new ShardlineError('closed', 'the client is closed')
    if (callerSignal?.aborted) throw aborted(callerSignal)
    if (this.inFlight >= this.settings.maxInFlight) {
      throw new ShardlineError('queue_full', `${this.inFlight} calls are in flight already (maxInFlight ${this.settings.maxInFlight})`)
    }
    // A controller and a timer, both let go when the call settles: cheaper than AbortSignal.timeout and
    // AbortSignal.any, whose timers and listeners outlive the call (at 100,000 calls a second, that counts).
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(new ShardlineError('timeout', `the call did not finish within ${timeoutMs} ms`)), timeoutMs)
    const onCallerAbort = () => controller.abort(aborted(callerSignal!))
    callerSignal?.addEventListener('abort', onCallerAbort, { once: true })
    this.inFlight++
    try {
      return await run(controller.signal)
    } catch (error) {
      // Whatever the transport failed with once the call was abandoned, the abandonment is the answer.
      if (controller.signal.aborted) throw controller.signal.reason
      if (error instanceof ShardlineError) throw error
      // Direct mode's route tree fails with the router's own errors: the same code and status a router would answer.
      if (error instanceof HttpError) throw new ShardlineError(error.code, error.message, { status: error.statusCode, cause: error })
      throw new ShardlineError('connection_error', (error as Error).message, { cause: error })
    } finally {
      clearTimeout(timer)
      callerSignal?.removeEventListener('abort', onCallerAbort)
      if (--this.inFlight === 0) this.drained?.resolve()
    }
  }
}

function aborted(signal: AbortSignal): ShardlineError {
  return new ShardlineError('aborted', 'the call was aborted', { cause: signal.reason })
}

function checkCallOptions(options: CallOptions | undefined, defaultTimeoutMs: number): { signal?: AbortSignal; timeoutMs: number } {
  if (options === undefined) return { timeoutMs: defaultTimeoutMs }
  if (options === null || typeof options !== 'object') throw invalidArgument('call options must be an object')
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw invalidArgument('signal must be an AbortSignal')
  const { min, max } = NUMERIC_OPTIONS.timeoutMs
  return { signal: options.signal, timeoutMs: checkWholeNumber('timeoutMs', options.timeoutMs, min, max, defaultTimeoutMs) }
}

function checkReadAs(options: GetOptions | undefined): 'value' | 'buffer' {
  const as = options?.as ?? 'value'
  if (as !== 'value' && as !== 'buffer') throw invalidArgument(`as must be 'value' or 'buffer', not ${JSON.stringify(as)}`)
  return as
}
