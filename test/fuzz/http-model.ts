// The HTTP fuzz property's vocabulary and model: keys (as paths and batch keys), JSON and raw values,
// TTLs and increments at the edges, the requests built from them, and every answer the router may give.
import { isUtf8 } from 'node:buffer'
import http from 'node:http'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import { INT64_MAX, INT64_MIN, MAX_TTL_SECONDS } from '../../common/limits.ts'
import { bytesDigest, choices, describeBytes, labelled, laxInteger, maybe, strictInt64, truncate, type Outcome } from './fuzz-support.ts'

// ---- Vocabulary ----

export interface HttpKey {
  name: string
  /** The key it names when valid; null for one refused everywhere. */
  text: string | null
  /** Percent-encoded path segments that reach it (none: only the batch API can). */
  paths: string[]
  /** How a batch op names it, when it can. */
  batchKey?: string
  /** Codes the router may refuse it with, by where it appears; null = accepted. */
  pathRefusal: string[] | null
  batchRefusal: string[] | null
}

const validKey = (text: string, paths: string[] = [encodeURIComponent(text)]): HttpKey =>
  ({ name: printable(truncate(text, 20)), text, paths, batchKey: text, pathRefusal: null, batchRefusal: null })
const refusedKey = (name: string, text: string | undefined, paths: string[], pathRefusal: string[], batchRefusal = pathRefusal): HttpKey =>
  ({ name, text: null, paths, batchKey: text, pathRefusal, batchRefusal: text === undefined ? null : batchRefusal })

/** A key as a failure message shows it: quoted, with invisible and odd characters escaped. */
function printable(text: string): string {
  return `"${text.replace(/[^\x20-\x7e\u00a1-\ufffc]|[\ud800-\udfff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`
}

const LONGEST_KEY = 'x'.repeat(250)
const LONGEST_UTF8_KEY = 'é'.repeat(125)

/** Few keys, so that ops collide, with the edges of the key rules among them (default maxKeyBytes 250). */
const KEYS: readonly HttpKey[] = [
  validKey('a', ['a', '%61']),
  validKey('A', ['A', '%41']),
  validKey('k%41', ['k%2541']),
  validKey('ключ'),
  validKey('sp ace/?#&+=;'),
  validKey(LONGEST_KEY, [LONGEST_KEY]),
  validKey(LONGEST_UTF8_KEY),
  // Just past the C1 controls, and the character a lone surrogate would wrongly become.
  validKey('\u00a0'),
  validKey('\ufffd'),
  // A dot segment: URL clients resolve it away, so only a batch reaches it.
  validKey('.', []),
  refusedKey('251 bytes', `${LONGEST_KEY}x`, [`${LONGEST_KEY}x`], ['key_too_long']),
  refusedKey('251 UTF-8 bytes', `${LONGEST_UTF8_KEY}a`, [`${encodeURIComponent(LONGEST_UTF8_KEY)}a`], ['key_too_long']),
  ...['\x01', '\n', '\x7f', '\u0085', '\u009f'].map((text) => refusedKey(printable(text), text, [encodeURIComponent(text)], ['invalid_key'])),
  refusedKey('lone surrogate', '\ud800', ['%ED%A0%80'], ['invalid_url', 'invalid_key'], ['invalid_key']),
  refusedKey('empty', '', [], [], ['invalid_key']),
  refusedKey('bad percent-encoding', undefined, ['%zz', '%', '%E2%82', 'a%2'], ['invalid_url']),
]
export const VALID_KEYS = KEYS.filter((key) => key.text !== null)

export interface JsonValueChoice {
  text: string
  /** Nesting depth of arrays and objects (a scalar is 0). */
  depth: number
  /** Not JSON at all: the whole body is then invalid. */
  malformed?: boolean
  /** Holds a key fastify's prototype-poisoning guard may refuse. */
  protoKey?: boolean
}

const MiB = 1024 * 1024
const MAX_VALUE_BYTES = MiB
const nested = (depth: number, open: string, inner: string, close: string) => ({ text: open.repeat(depth) + inner + close.repeat(depth), depth })

const SPECIAL_VALUES: JsonValueChoice[] = [
  ...['9007199254740993', '1e400', '-0', '1E2', '0.1', '9223372036854775807', '42', '-7', '1.5', '1e3', 'true', 'null', '""', '"\\u0000"', '"\\ud800"', '"héllo"', '"9223372036854775807"', '"-9223372036854775808"', '"9223372036854775806"', '"9007199254740993"', '"007"', '"-0"', '" 5"'].map((text) => ({ text, depth: 0 })),
  nested(20, '[', '1', ']'), nested(50, '{"a":', '[]', '}'), nested(65, '[', '', ']'), nested(200, '[', '', ']'), nested(10_000, '[', '', ']'), nested(10_000, '{"a":', '0', '}'),
  { text: `"${'x'.repeat(MiB - 1)}y"`, depth: 0 },
  { text: `"${'é'.repeat(MiB / 2)}"`, depth: 0 },
  { text: `"${'x'.repeat(MiB)}!"`, depth: 0 },
  { text: '[1,', depth: 1, malformed: true },
  jsonChoice('{"__proto__":{"x":1}}', 2),
]

const LARGE_VALUES = SPECIAL_VALUES.filter((v) => v.text.length >= 1000)
const jsonValue: fc.Arbitrary<JsonValueChoice> = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => jsonChoice(JSON.stringify(v), depthOf(v))), weight: 4 },
  { arbitrary: fc.constantFrom(...SPECIAL_VALUES.filter((v) => v.text.length < 1000)), weight: 6 },
  { arbitrary: fc.constantFrom(...LARGE_VALUES), weight: 1 },
)

// fastify refuses "__proto__" and "constructor" keys in bodies by default (prototype poisoning).
function jsonChoice(text: string, depth: number): JsonValueChoice {
  return { text, depth, protoKey: /"(__proto__|constructor)"/.test(text) }
}

function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  return 1 + Math.max(0, ...Object.values(value as object).map(depthOf))
}

/** Raw (octet-stream) values: arbitrary bytes, counters' edges, the size limit. */
const rawValue: fc.Arbitrary<Buffer> = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)), weight: 4 },
  { arbitrary: fc.constantFrom('9223372036854775807', '-9223372036854775808', '9223372036854775808', '0', '12', '007', '').map((text) => Buffer.from(text)), weight: 4 },
  { arbitrary: fc.constantFrom(Buffer.alloc(MiB, 0xfe), Buffer.alloc(MiB + 1, 'z')), weight: 1 },
)

/** A ttl in a JSON body, as text, and whether the router must take it (then whether it may run out in a run). */
export interface TtlChoice {
  text: string
  valid: boolean | 'either'
  short: boolean
}

const ttl = (text: string, valid: boolean | 'either', short = false): TtlChoice => ({ text, valid, short })
const BODY_TTLS: TtlChoice[] = [
  ttl('3600', true), ttl('86400.5', true), ttl('2147483648', true), ttl(String(MAX_TTL_SECONDS), true),
  ttl('1', true, true), ttl('0.001', true, true), ttl('1e-300', true, true), ttl('1.5', true, true),
  ...['0', '-1', '-0', String(MAX_TTL_SECONDS + 1), '281474976710656', '9007199254740992', '1e12', '1e300', '"NaN"', '"10"', 'null', 'true'].map((text) => ttl(text, false)),
]
/** Query-string ttls (with raw bodies); a few have no reading the contract pins down. */
const QUERY_TTLS: (TtlChoice | null)[] = [
  null, ttl('3600', true), ttl('1e3', true), ttl('2147483648', true), ttl(String(MAX_TTL_SECONDS), true), ttl('0.5', true, true), ttl('1', true, true),
  ...['0', '-1', 'abc', 'NaN', 'Infinity', '1e300', '1e12', String(MAX_TTL_SECONDS + 1), '9007199254740992'].map((text) => ttl(text, false)),
  ttl('', 'either'), ttl('0x10', 'either', true), ttl('%205', 'either', true), ttl('5&ttl=6', 'either', true),
]

/** An increment's body, as sent, and what the router must make of it. */
export interface IncrBody {
  /** undefined: no body and no content type. */
  text?: string
  by: bigint | null
  refusal?: string[]
}

const by = (text: string | undefined, value: bigint | null, refusal?: string[]): IncrBody => ({ text, by: value, refusal })
const INCR_BODIES: IncrBody[] = [
  by(undefined, 1n), by('', 1n), by('{}', 1n), by('{"by":0}', 0n), by('{"by":-1}', -1n), by('{"by":1}', 1n), by('{"by":2147483648}', 2n ** 31n),
  by('{"by":281474976710656}', 2n ** 48n), by('{"by":9007199254740991}', 2n ** 53n - 1n), by('{"by":-9007199254740991}', -(2n ** 53n - 1n)),
  by('{"by":1e2}', 100n), by('{"by":-0}', 0n), by('{"by":1.0}', 1n),
  ...['{"by":9007199254740992}', '{"by":-9007199254740992}', '{"by":9223372036854775808}', '{"by":1e300}', '{"by":1.5}', '{"by":"1"}', '{"by":null}', '{"by":true}', '{"by":[1]}', '{"by":1,"x":1}', '5', '"by"']
    .map((text) => by(text, null, ['invalid_request'])),
  by('{', null, ['invalid_json']),
  by(`{"by":${nested(10_000, '[', '', ']').text}}`, null, ['too_deep']),
]

export interface BatchItem {
  op: 'get' | 'set' | 'delete'
  key: HttpKey
  value?: JsonValueChoice
  ttl?: TtlChoice
}

export type HttpOp = { label: string } & (
  | { kind: 'get'; key: HttpKey; path: string; raw: boolean }
  | { kind: 'set'; key: HttpKey; path: string; value: JsonValueChoice; ttl?: TtlChoice }
  | { kind: 'setRaw'; key: HttpKey; path: string; bytes: Buffer; ttl: TtlChoice | null }
  | { kind: 'delete' | 'counter'; key: HttpKey; path: string }
  | { kind: 'incr'; key: HttpKey; path: string; body: IncrBody }
  | { kind: 'batch'; items: BatchItem[] }
)

// ---- Arbitraries ----

// Two keys (each with two spellings) take half the ops, so that writes, increments and reads meet.
const HOT_KEYS = VALID_KEYS.slice(0, 2)
const pathKey = fc.oneof(
  { arbitrary: fc.constantFrom(...HOT_KEYS), weight: 8 },
  { arbitrary: fc.constantFrom(...VALID_KEYS.filter((key) => key.paths.length > 0)), weight: 8 },
  { arbitrary: fc.constantFrom(...KEYS.filter((key) => key.text === null && key.paths.length > 0)), weight: 1 },
).chain((key) => fc.constantFrom(...key.paths).map((path) => ({ key, path })))
const batchKey = fc.oneof(
  { arbitrary: fc.constantFrom(...HOT_KEYS), weight: 15 },
  { arbitrary: fc.constantFrom(...VALID_KEYS), weight: 15 },
  { arbitrary: fc.constantFrom(...KEYS.filter((key) => key.text === null && key.batchKey !== undefined)), weight: 1 },
)
const bodyTtl = maybe(fc.constantFrom(...BODY_TTLS), 1, 1)
// Mostly increments that are taken, the largest ones often, so that totals reach int64's edges.
const incrBody = fc.oneof(
  { arbitrary: fc.constantFrom(...INCR_BODIES.filter((body) => body.by !== null)), weight: 3 },
  { arbitrary: fc.constantFrom(...INCR_BODIES.filter((body) => body.by !== null && (body.by > 2n ** 52n || body.by < -(2n ** 52n)))), weight: 2 },
  { arbitrary: fc.constantFrom(...INCR_BODIES.filter((body) => body.by === null)), weight: 2 },
)
// Counters near int64's edges and past 2^53, as JSON strings (stored exactly), with other numbers and numeric strings.
const counterText = fc.oneof(
  { arbitrary: fc.constantFrom(...[INT64_MAX, INT64_MIN, INT64_MAX - 1n, INT64_MIN + 1n, 2n ** 53n + 1n, -(2n ** 53n) - 1n].map((n) => ({ text: `"${n}"`, depth: 0 }))), weight: 2 },
  { arbitrary: fc.constantFrom(...SPECIAL_VALUES.filter((v) => /^"?-?\d/.test(v.text) && v.text.length < 40)), weight: 1 },
)

const ops = {
  get: fc.record({ key: pathKey, raw: fc.boolean() }).map(({ key, raw }) => getOp(key.key, key.path, raw)),
  set: fc.record({ key: pathKey, value: jsonValue, ttl: bodyTtl }).map(({ key, value, ttl }) => setOp(key, value, ttl)),
  setCounter: fc.record({ key: pathKey, value: counterText }).map(({ key, value }) => setOp(key, value, undefined)),
  // A hot key given a value at or past the size limit: what amplified batch reads feed on.
  setLarge: fc.record({ key: fc.constantFrom(...HOT_KEYS), value: fc.constantFrom(...LARGE_VALUES) }).map(({ key, value }) => setOp({ key, path: key.paths[0] }, value, undefined)),
  setRaw: fc.record({ key: pathKey, bytes: rawValue, ttl: fc.constantFrom(...QUERY_TTLS) }).map(({ key, bytes, ttl }) =>
    op({ kind: 'setRaw', ...key, bytes, ttl }, `POST /${describePath(key.path)}${ttl ? `?ttl=${ttl.text}` : ''} octet-stream ${describeBytes(bytes)}`)),
  delete: pathKey.map((key) => op({ kind: 'delete', ...key }, `DELETE /${describePath(key.path)}`)),
  incr: fc.record({ key: pathKey, body: incrBody }).map(({ key, body }) =>
    op({ kind: 'incr', ...key, body }, `POST /${describePath(key.path)}/incr ${body.text === undefined ? '(no body)' : truncate(body.text, 60) || '(empty JSON body)'}`)),
  counter: pathKey.map((key) => op({ kind: 'counter', ...key }, `GET /${describePath(key.path)}/counter`)),
  batch: fc.array(fc.oneof(
    { arbitrary: fc.record({ op: fc.constant('get' as const), key: batchKey }), weight: 30 },
    { arbitrary: fc.record({ op: fc.constant('set' as const), key: batchKey, value: jsonValue, ttl: bodyTtl }, { requiredKeys: ['op', 'key', 'value'] }), weight: 30 },
    { arbitrary: fc.record({ op: fc.constant('delete' as const), key: batchKey }), weight: 10 },
    // Ops the batch schema refuses: a get or delete with a ttl, a set without a value.
    { arbitrary: fc.record({ op: fc.constantFrom('get' as const, 'delete' as const), key: batchKey, ttl: fc.constantFrom(...BODY_TTLS) }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('set' as const), key: batchKey }), weight: 1 },
  ), { maxLength: 12 }).map((items) => batchOp(items)),
  // Many gets of one key: past the response budget when the key holds a large value.
  amplify: fc.record({ key: fc.constantFrom(...HOT_KEYS), count: fc.integer({ min: 1, max: 40 }) }).map(({ key, count }) => batchOp(Array.from({ length: count }, () => ({ op: 'get' as const, key })))),
} satisfies Record<string, fc.Arbitrary<HttpOp>>

export type OpFamily = keyof typeof ops

/** Ops from the families given, each with its weight. */
export function opArbitrary(weights: Partial<Record<OpFamily, number>>): fc.Arbitrary<HttpOp> {
  return fc.oneof(...Object.entries(weights).map(([family, weight]) => ({ arbitrary: ops[family as OpFamily] as fc.Arbitrary<HttpOp>, weight: weight! })))
}

function op<T extends Omit<HttpOp, 'label'>>(fields: T, label: string): T & { label: string } {
  return labelled(fields, label)
}

function setOp(key: { key: HttpKey; path: string }, value: JsonValueChoice, ttl: TtlChoice | undefined): HttpOp {
  return op({ kind: 'set', ...key, value, ttl }, `POST /${describePath(key.path)} {"value": ${describeJson(value)}${ttl ? `, "ttl": ${ttl.text}` : ''}}`)
}

export function getOp(key: HttpKey, path: string, raw = false): HttpOp {
  return op({ kind: 'get', key, path, raw }, `GET /${describePath(path)}${raw ? ' (raw)' : ''}`)
}

export function batchOp(items: BatchItem[]): HttpOp {
  const describe = (item: BatchItem) => [item.op, item.key.name, item.value && describeJson(item.value), item.ttl && `ttl ${item.ttl.text}`].filter(Boolean).join(' ')
  return op({ kind: 'batch', items }, `batch [${items.map(describe).join('; ')}]`)
}

function describePath(path: string): string {
  return path.length <= 40 ? path : `<${path.length} chars ${path.slice(0, 12)}…>`
}

function describeJson(value: JsonValueChoice): string {
  return value.text.length <= 60 ? value.text : `<${value.text.length} chars of JSON, depth ${value.depth}: ${value.text.slice(0, 24)}…>`
}

// ---- Requests ----

export interface HttpRequest {
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  headers: Record<string, string>
  body?: Buffer | string
}

export interface HttpResponse {
  status: number
  contentType: string
  body: Buffer
}

const JSON_HEADERS = { 'content-type': 'application/json' }

export function requestFor(op: HttpOp): HttpRequest {
  switch (op.kind) {
    case 'get':
      return { method: 'GET', path: `/${op.path}`, headers: op.raw ? { accept: 'application/octet-stream' } : {} }
    case 'set':
      return { method: 'POST', path: `/${op.path}`, headers: JSON_HEADERS, body: `{"value":${op.value.text}${op.ttl ? `,"ttl":${op.ttl.text}` : ''}}` }
    case 'setRaw':
      return { method: 'POST', path: `/${op.path}${op.ttl ? `?ttl=${op.ttl.text}` : ''}`, headers: { 'content-type': 'application/octet-stream' }, body: op.bytes }
    case 'delete':
      return { method: 'DELETE', path: `/${op.path}`, headers: {} }
    case 'counter':
      return { method: 'GET', path: `/${op.path}/counter`, headers: {} }
    case 'incr':
      return { method: 'POST', path: `/${op.path}/incr`, headers: op.body.text === undefined ? {} : JSON_HEADERS, body: op.body.text }
    case 'batch': {
      const item = (i: BatchItem) => `{"op":"${i.op}","key":${JSON.stringify(i.key.batchKey)}${i.value ? `,"value":${i.value.text}` : ''}${i.ttl ? `,"ttl":${i.ttl.text}` : ''}}`
      return { method: 'POST', path: '/-/batch', headers: JSON_HEADERS, body: `{"ops":[${op.items.map(item).join(',')}]}` }
    }
  }
}

/** Longer than any request takes here: no answer by then is a finding. */
const RESPONSE_TIMEOUT_MS = 10_000

/** One request on its own connection (an idle keep-alive socket the router closes could race a reuse). */
export function send(base: URL, request: HttpRequest): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request({ host: base.hostname, port: base.port, method: request.method, path: request.path, headers: request.headers, agent: false, timeout: RESPONSE_TIMEOUT_MS }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode!, contentType: response.headers['content-type'] ?? '', body: Buffer.concat(chunks) }))
      response.on('error', reject)
    })
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no response within ${RESPONSE_TIMEOUT_MS} ms`)))
    outgoing.on('error', reject)
    outgoing.end(request.body)
  })
}

export function describeResponse(response: HttpResponse): string {
  const body = response.contentType.startsWith('application/json') ? truncate(response.body.toString('utf8'), 300) : describeBytes(response.body)
  return `${response.status} ${response.contentType} ${body}`
}

// ---- Reading JSON exactly ----

/** A JSON number as written: compared by its text, so 9007199254740993 stays itself. */
class JsonNumber {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

const parsedBodies = new WeakMap<Buffer, unknown>()
const UNPARSABLE = Symbol('unparsable')

/** The body as JSON with every number kept as its text; UNPARSABLE when it is not JSON. */
function exactJson(body: Buffer): unknown {
  if (!parsedBodies.has(body)) {
    let parsed: unknown
    try {
      parsed = parseExact(body.toString('utf8'))
    } catch {
      parsed = UNPARSABLE
    }
    parsedBodies.set(body, parsed)
  }
  return parsedBodies.get(body)
}

function parseExact(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => (typeof value === 'number' ? new JsonNumber(context!.source!) : value))
}

/**
 * What a response must look like whatever the model says: never a 5xx (no faults are injected),
 * and every refusal a JSON {error, code}. Returns the problem, or null.
 */
export function shapeProblem(op: HttpOp, response: HttpResponse): string | null {
  if (response.status >= 500) return `a ${response.status}: the router must not fail on client input (no faults were injected)`
  if (op.kind === 'get' && op.raw && response.status === 200) {
    return response.contentType.startsWith('application/octet-stream') ? null : `a raw read answered with content type ${response.contentType}`
  }
  if (!response.contentType.startsWith('application/json')) return `content type ${JSON.stringify(response.contentType)}, not JSON`
  const body = exactJson(response.body)
  if (body === UNPARSABLE) return 'a body that is not JSON'
  if (response.status >= 400) {
    const { error, code } = (body ?? {}) as { error?: unknown; code?: unknown }
    return typeof error === 'string' && typeof code === 'string' ? null : 'a refusal without the {error, code} shape'
  }
  return null
}

// ---- The model ----

interface Entry {
  bytes: Buffer
  flags: number
  /** Set with a TTL that may run out during the run: reads allow the value or a miss. */
  short: boolean
  /**
   * Last written by the shard's own clock (an increment): the router's next versioned write of the
   * key can tie or lose against it within the same millisecond, and then answers stored:false.
   */
  byShard: boolean
}

export type World = ReadonlyMap<string, Entry>
export const EMPTY_WORLD: World = new Map()

export function fingerprint(world: World): string {
  return [...world.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([key, entry]) => `${JSON.stringify(key)}=${bytesDigest(entry.bytes)}/${entry.flags}${entry.short ? '/short' : ''}${entry.byShard ? '/shard' : ''}`).join(' ')
}

const FLAG_JSON = 1

/** How the router stores a JSON value: a string as its UTF-8 bytes, anything else as JSON text. */
function storedJson(value: JsonValueChoice): { bytes: Buffer; flags: number } {
  const parsed: unknown = JSON.parse(value.text)
  return typeof parsed === 'string' ? { bytes: Buffer.from(parsed, 'utf8'), flags: 0 } : { bytes: Buffer.from(JSON.stringify(parsed), 'utf8'), flags: FLAG_JSON }
}

/** A value as GET /:key shows it (the README's value rule), as JSON text. */
function renderValue(entry: Entry): string {
  if (entry.flags & FLAG_JSON) return `{"value":${entry.bytes.toString('utf8')}}`
  if (isUtf8(entry.bytes)) return JSON.stringify({ value: entry.bytes.toString('utf8') })
  return JSON.stringify({ value: entry.bytes.toString('base64'), encoding: 'base64' })
}

type Expect = { describe: string; accepts(response: HttpResponse): boolean }

function jsonBody(text: string): Expect {
  const expected = parseExact(text)
  return { describe: `200 ${truncate(text, 200)}`, accepts: (r) => r.status === 200 && isDeepStrictEqual(exactJson(r.body), expected) }
}

function rawBody(bytes: Buffer): Expect {
  return { describe: `200 raw ${describeBytes(bytes)}`, accepts: (r) => r.status === 200 && r.body.equals(bytes) }
}

const STATUS_OF: Record<string, number> = { too_large: 413, response_too_large: 413, not_found: 404, not_a_counter: 409, counter_overflow: 409 }

function refusal(codes: readonly string[]): Expect {
  return {
    describe: codes.map((code) => `${STATUS_OF[code] ?? 400} ${code}`).join(' or '),
    accepts: (r) => {
      const code = (exactJson(r.body) as { code?: unknown } | null)?.code
      return typeof code === 'string' && codes.includes(code) && r.status === (STATUS_OF[code] ?? 400)
    },
  }
}

const NOT_FOUND = refusal(['not_found'])
/** A miss as a batch result shows it. */
const NOT_FOUND_TEXT = '{"error":"not found","code":"not_found"}'

function outcome(expect: Expect, next: World): Outcome<World, HttpResponse> {
  return { expected: expect.describe, accepts: expect.accepts, next }
}

function withEntry(world: World, key: string, entry: Entry | undefined): World {
  const next = new Map(world)
  if (entry === undefined) next.delete(key)
  else next.set(key, entry)
  return next
}

/** Every short-TTL key a step touches either still there or run out. */
function expiryVariants(world: World, keys: readonly string[]): World[] {
  const short = [...new Set(keys)].filter((key) => world.get(key)?.short)
  return choices(short, (key) => [key, null]).map((picked) => {
    const expired = short.filter((_, i) => picked[i] === null)
    if (expired.length === 0) return world
    const next = new Map(world)
    for (const key of expired) next.delete(key)
    return next
  })
}

/** Readings of a stored value as a counter: Redis's, then a laxer one ("007"); null = not a counter. */
function counterReadings(entry: Entry | undefined): (bigint | null)[] {
  if (entry === undefined) return [0n]
  const text = entry.bytes.toString('latin1')
  const strict = strictInt64(text)
  if (strict !== null) return [strict]
  const lax = laxInteger(text)
  return lax === null ? [null] : [null, lax]
}

/** Depth past which a value is refused (too_deep) and up to which it is taken: the contract's 64, with room for how the wrapper counts. */
const SURELY_SHALLOW = 50
const SURELY_DEEP = 80

/** The codes a JSON value (with its ttl) may be refused with; [] when it must be taken. A value near the depth limit has both. */
function valueRefusals(value: JsonValueChoice, ttlChoice: TtlChoice | undefined): string[][] {
  if (value.malformed) return [['invalid_json']]
  const codes: string[] = []
  if (value.depth > SURELY_DEEP) codes.push('too_deep')
  if (ttlChoice && ttlChoice.valid === false) codes.push('invalid_ttl')
  const tooDeep = value.depth > SURELY_DEEP
  if (!tooDeep && storedJson(value).bytes.length > MAX_VALUE_BYTES) codes.push('too_large')
  const readings = [codes]
  if (value.depth > SURELY_SHALLOW && !tooDeep) readings.push([...codes, 'too_deep'])
  if (value.protoKey) readings.push([...codes, 'invalid_json'])
  return readings
}

/** Everything the router may answer to one op in one world. */
export function outcomes(world: World, op: HttpOp): Outcome<World, HttpResponse>[] {
  const touched = op.kind === 'batch' ? op.items.flatMap((item) => (item.key.text === null ? [] : [item.key.text])) : op.key.text === null ? [] : [op.key.text]
  return expiryVariants(world, touched).flatMap((variant) => (op.kind === 'batch' ? batchOutcomes(variant, op.items) : singleOutcomes(variant, op)))
}

function singleOutcomes(world: World, op: Exclude<HttpOp, { kind: 'batch' }>): Outcome<World, HttpResponse>[] {
  const refused = (codes: string[]) => [outcome(refusal(codes), world)]
  const keyCodes = op.key.pathRefusal ?? []
  const key = op.key.text ?? ''
  const current = world.get(key)
  switch (op.kind) {
    case 'get': {
      if (keyCodes.length > 0) return refused(keyCodes)
      if (current === undefined) return [outcome(NOT_FOUND, world)]
      return [outcome(op.raw ? rawBody(current.bytes) : jsonBody(renderValue(current)), world)]
    }
    case 'set': case 'setRaw': {
      const readings = op.kind === 'set' ? valueRefusals(op.value, op.ttl) : rawRefusals(op.bytes, op.ttl)
      return readings.flatMap((codes) => {
        if (keyCodes.length > 0 || codes.length > 0) return refused([...keyCodes, ...codes])
        const stored = op.kind === 'set' ? storedJson(op.value) : { bytes: op.bytes, flags: 0 }
        const short = op.ttl?.short ?? false
        const written = outcome(jsonBody('{"stored":true}'), withEntry(world, key, { ...stored, short, byShard: false }))
        return current?.byShard ? [written, outcome(jsonBody('{"stored":false}'), world)] : [written]
      })
    }
    case 'delete': {
      if (keyCodes.length > 0) return refused(keyCodes)
      if (current === undefined) return [outcome(jsonBody('{"deleted":false}'), world)]
      const deleted = outcome(jsonBody('{"deleted":true}'), withEntry(world, key, undefined))
      return current.byShard ? [deleted, outcome(jsonBody('{"deleted":false}'), world)] : [deleted]
    }
    case 'incr': {
      const codes = [...keyCodes, ...(op.body.refusal ?? [])]
      if (codes.length > 0) return refused(codes)
      return counterReadings(current).flatMap((base) => {
        if (base === null) return refused(['not_a_counter'])
        const total = base + op.body.by!
        if (total > INT64_MAX || total < INT64_MIN) return refused(['counter_overflow'])
        const entry: Entry = { bytes: Buffer.from(String(total)), flags: current?.flags ?? 0, short: current?.short ?? false, byShard: true }
        return [outcome(jsonBody(`{"value":${total}}`), withEntry(world, key, entry))]
      })
    }
    case 'counter': {
      if (keyCodes.length > 0) return refused(keyCodes)
      return counterReadings(current).map((value) => outcome(value === null ? refusal(['not_a_counter']) : jsonBody(`{"value":${value}}`), world))
    }
  }
}

function rawRefusals(bytes: Buffer, ttlChoice: TtlChoice | null): string[][] {
  const sizeCodes = bytes.length > MAX_VALUE_BYTES ? ['too_large'] : []
  if (ttlChoice === null || ttlChoice.valid === true) return [sizeCodes]
  if (ttlChoice.valid === false) return [[...sizeCodes, 'invalid_ttl']]
  return [sizeCodes, [...sizeCodes, 'invalid_ttl']]
}

/** A batch's response budget (the contract's default limits.maxBatchResponseBytes), with a margin either side for how results are counted. */
const MAX_BATCH_RESPONSE_BYTES = 16 * MiB
const BUDGET_MARGIN = 64 * 1024

/**
 * A batch: refused whole if any op is bad; else its ops run concurrently. Writes of one key carry
 * rising versions, so the last one wins unless the key was last written by the shard's clock (then
 * none may land); a get may see the key before the batch or after any of its writes.
 */
function batchOutcomes(world: World, items: BatchItem[]): Outcome<World, HttpResponse>[] {
  const codeSets = choices(items, itemRefusals).map((perItem) => perItem.flat())
  const refusedAs = [...new Set(codeSets.filter((codes) => codes.length > 0).map((codes) => codes.join(',')))]
  const results: Outcome<World, HttpResponse>[] = refusedAs.map((codes) => outcome(refusal(codes.split(',')), world))
  if (!codeSets.some((codes) => codes.length === 0)) return results

  const writtenKeys = [...new Set(items.filter((item) => item.op !== 'get').map((item) => item.key.text!))]
  const racing = writtenKeys.filter((key) => world.get(key)?.byShard)
  for (const landed of choices(racing, () => [true, false])) {
    const lost = new Set(racing.filter((_, i) => !landed[i]))
    // Each key's states in the order its writes were issued.
    const states = new Map<string, (Entry | undefined)[]>()
    for (const item of items) {
      const key = item.key.text!
      if (!states.has(key)) states.set(key, [world.get(key)])
      if (item.op === 'set' && !lost.has(key)) states.get(key)!.push({ ...storedJson(item.value!), short: item.ttl?.short ?? false, byShard: false })
      if (item.op === 'delete' && !lost.has(key)) states.get(key)!.push(undefined)
    }
    let next = world
    for (const [key, history] of states) next = withEntry(next, key, history[history.length - 1])
    const allowed = items.map((item, index) => allowedResults(item, index, items, states, lost))
    const parsed = allowed.map((texts) => texts.map(parseExact))
    const budget = budgetVerdict(items, allowed)
    if (budget !== 'over') {
      results.push({
        expected: `200 {"results": [${allowed.map((texts) => texts.map((text) => truncate(text, 80)).join(' or ')).join(', ')}]}`,
        accepts: (response) => {
          if (response.status !== 200) return false
          const body = exactJson(response.body) as { results?: unknown[] } | null
          return Array.isArray(body?.results) && body.results.length === items.length && body.results.every((result, i) => parsed[i].some((value) => isDeepStrictEqual(result, value)))
        },
        next,
      })
    }
    if (budget !== 'under') results.push(outcome(refusal(['response_too_large']), world))
  }
  return results
}

function itemRefusals(item: BatchItem): string[][] {
  const keyCodes = item.key.batchRefusal ?? []
  if (item.op === 'set') {
    if (item.value === undefined) return [[...keyCodes, 'invalid_request']]
    return valueRefusals(item.value, item.ttl).map((codes) => [...keyCodes, ...codes])
  }
  // A get or delete takes no ttl; the schema may judge the ttl itself first.
  return [[...keyCodes, ...(item.ttl ? ['invalid_request'] : []), ...(item.ttl?.valid === false ? ['invalid_ttl'] : [])]]
}

/**
 * The results an item may show (as JSON texts). A state with a short TTL may run out while the
 * batch runs, so an op that meets it may also find the key missing.
 */
function allowedResults(item: BatchItem, index: number, items: BatchItem[], states: Map<string, (Entry | undefined)[]>, lost: Set<string>): string[] {
  const key = item.key.text!
  const history = states.get(key)!
  const mayRunOut = history.some((state) => state?.short)
  if (item.op === 'get') {
    const seen = history.map((state) => (state === undefined ? NOT_FOUND_TEXT : renderValue(state)))
    return [...new Set(mayRunOut ? [...seen, NOT_FOUND_TEXT] : seen)]
  }
  const writes = items.filter((other) => other.op !== 'get' && other.key.text === key)
  const isLast = writes[writes.length - 1] === items[index]
  if (item.op === 'set') return lost.has(key) ? ['{"stored":false}'] : isLast ? ['{"stored":true}'] : ['{"stored":true}', '{"stored":false}']
  if (lost.has(key)) return ['{"deleted":false}']
  return writes.length === 1 && !mayRunOut ? [`{"deleted":${history[0] !== undefined}}`] : ['{"deleted":true}', '{"deleted":false}']
}

/**
 * Past the batch budget the router answers 413 response_too_large, within it 200; near it, or
 * where bytes and characters disagree, either. Only batches of reads are refused so in this model
 * (one with writes may have run them before the budget ran out).
 */
function budgetVerdict(items: BatchItem[], allowed: string[][]): 'under' | 'over' | 'either' {
  if (items.some((item) => item.op !== 'get')) return 'under'
  const total = (measure: (text: string) => number) => allowed.reduce((sum, texts) => sum + Math.max(...texts.map(measure)) + 1, 0)
  const sizes = [total((text) => Buffer.byteLength(text)), total((text) => text.length)]
  if (sizes.every((size) => size < MAX_BATCH_RESPONSE_BYTES - BUDGET_MARGIN)) return 'under'
  if (sizes.every((size) => size > MAX_BATCH_RESPONSE_BYTES + BUDGET_MARGIN)) return 'over'
  return 'either'
}
