// `shardline get|set|del <key> [value] [--ttl s] [--router url]`: one call through the client library
// (HTTP mode) to a router, printed as the router's JSON answer; a miss exits 1, a refusal 2.
import { parseArgs } from 'node:util'
import { createClient } from '../client/client.ts'
import { ShardlineError, type CacheValue, type ShardlineClient } from '../client/types.ts'
import { ConfigError } from '../common/validate.ts'

const DEFAULT_ROUTER = process.env.SHARDLINE_ROUTER ?? 'http://127.0.0.1:8080'

export async function runClientCommand(command: 'get' | 'set' | 'del', argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ttl: { type: 'string' }, router: { type: 'string' }, json: { type: 'boolean' } },
    strict: true,
  })
  const [key, value] = positionals
  const wanted = command === 'set' ? 2 : 1
  if (positionals.length !== wanted) {
    throw new ConfigError(`usage: shardline ${command} <key>${command === 'set' ? ' <value> [--ttl seconds] [--json]' : ''} [--router ${DEFAULT_ROUTER}]`)
  }
  let client: ShardlineClient
  try {
    client = createClient({ url: values.router ?? DEFAULT_ROUTER })
  } catch (error) {
    throw new ConfigError(`--router: ${(error as Error).message}`)
  }
  try {
    console.log(await call(client, command, key, value, values))
  } catch (error) {
    if (!(error instanceof ShardlineError)) throw error
    // The router's refusal as it answered it; a refusal of the client's own (a bad ttl, no router) as a message.
    if (error.status !== undefined) console.error(`${error.status} ${JSON.stringify({ error: error.message, code: error.code })}`)
    else console.error(`shardline: ${error.message} (${error.code})`)
    // 2 for a refusal (the router's, or the client's of a bad argument), as for a usage error; 1 for a miss or an outage.
    const refused = error.status !== undefined ? error.status !== 404 : error.code.startsWith('invalid_')
    process.exitCode = refused ? 2 : 1
  } finally {
    await client.close()
  }
}

async function call(client: ShardlineClient, command: 'get' | 'set' | 'del', key: string, value: string, flags: { ttl?: string; json?: boolean }): Promise<string> {
  if (command === 'del') return JSON.stringify({ deleted: await client.del(key) })
  if (command === 'set') {
    // The value is a string unless --json says it is JSON text to store as a JSON value.
    const stored = await client.set(key, flags.json ? JSON.parse(value) : value, { ttl: flags.ttl === undefined ? undefined : Number(flags.ttl) })
    return JSON.stringify({ stored })
  }
  const found = await client.get(key)
  if (found === null) throw new ShardlineError('not_found', 'not found', { status: 404 })
  return routerJson(found)
}

/** A value as the router's GET answers it: bytes that are not UTF-8 as base64. */
function routerJson(value: CacheValue): string {
  return Buffer.isBuffer(value) ? JSON.stringify({ value: value.toString('base64'), encoding: 'base64' }) : JSON.stringify({ value })
}
