// `shardline get|set|del <key> [value] [--ttl s] [--router url]`: talks to a router's HTTP API
// the way any client would, and prints the JSON answer.
import { parseArgs } from 'node:util'
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
  const url = `${values.router ?? DEFAULT_ROUTER}/${encodeURIComponent(key)}`
  let response: Response
  if (command === 'set') {
    // The value is a string unless --json says it is JSON text to store as a JSON value.
    const body: { value: unknown; ttl?: number } = { value: values.json ? JSON.parse(value) : value }
    if (values.ttl !== undefined) body.ttl = Number(values.ttl)
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  } else {
    response = await fetch(url, { method: command === 'get' ? 'GET' : 'DELETE' })
  }
  const text = await response.text()
  if (response.ok) console.log(text)
  else {
    console.error(`${response.status} ${text}`)
    process.exitCode = response.status === 404 ? 1 : 2
  }
}
