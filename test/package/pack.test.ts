// The installable package: `npm pack`, the tarball installed into an empty project, and there the
// `npx shardline` command and the `shardline/client` import, at run time and for the type checker.
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { VERSION } from '../../common/version.ts'
import { freePort, SHARD_READY, START_TIMEOUT_MS, superviseProcess } from '../helpers/processes.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc')

// The repository's Node 24 first on PATH (npm, npx and the installed bin's `#!/usr/bin/env node` use
// it), and none of tap's own hooks or coverage in the processes the consumer runs.
const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}` }
delete env.NODE_OPTIONS
delete env.NODE_V8_COVERAGE

/** Runs a command to completion; its stdout, or an error with both its outputs (tsc reports on stdout). */
async function sh(cwd: string, command: string, args: string[]): Promise<string> {
  try {
    return (await promisify(execFile)(command, args, { cwd, env, maxBuffer: 64 << 20 })).stdout
  } catch (error) {
    throw new Error(`${(error as Error).message}${(error as { stdout: string }).stdout}`)
  }
}

const consumer = mkdtempSync(join(tmpdir(), 'shardline-consumer-'))
t.teardown(() => rmSync(consumer, { recursive: true, force: true }))

// Packing runs prepack (the compile); --json lists the tarball's files.
const [packed] = JSON.parse(await sh(ROOT, 'npm', ['pack', '--json', '--silent', '--pack-destination', consumer])) as Array<{ filename: string; files: Array<{ path: string }> }>
writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
await sh(consumer, 'npm', ['install', join(consumer, packed.filename), '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'error'])

t.test('the tarball holds the compiled package: no tests, benchmarks, scripts or TypeScript sources', async (t) => {
  const files = packed.files.map((file) => file.path)
  t.ok(files.includes('dist/client/index.js') && files.includes('dist/client/index.d.ts'), 'shardline/client as JavaScript and types')
  t.ok(files.includes('dist/cli/shardline.js') && files.includes('bin/shardline.js'), 'the command and its launcher')
  t.ok(files.includes('dist/config/local.yaml') && files.includes('dist/package.json'), 'what the code reads beside itself (the default cluster config, the version)')
  t.ok(files.includes('README.md') && files.includes('package.json'))
  t.same(files.filter((file) => /^(test|bench|scripts|helm|node_modules)\/|^dist\/(test|bench|scripts)\//.test(file)), [], 'no tests, benchmarks, scripts or chart')
  t.same(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')), [], 'no .ts sources: Node will not run them under node_modules')
})

t.test('the installed command runs a shard and a router, and the installed client talks to them', async (t) => {
  const bin = join(consumer, 'node_modules/.bin/shardline')
  const start = (args: string[], ready: RegExp) => superviseProcess(t, spawn(bin, args, { cwd: consumer, env: { ...env, SHARDLINE_LOG_FORMAT: 'json' } }), ready, args[0], START_TIMEOUT_MS)
  const shard = await start(['shard', '--port', '0', '--admin-port', '0', '--max-memory', '16mb'], SHARD_READY)
  writeFileSync(join(consumer, 'router.yaml'), `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0 }\npools:\n  main:\n    shards: [{ name: s0, primary: 127.0.0.1:${shard.match[1]} }]\n`)
  const router = await start(['router', '--config', 'router.yaml'], /shardline router ready: (http:\/\/[\d.:]+)/)

  // The client from node_modules: a round trip through the router, and a typed error where nothing listens.
  const script = `
    const { createClient, ShardlineError } = await import('shardline/client')
    const client = createClient({ url: ${JSON.stringify(router.match[1])} })
    await client.set('user:1', { name: 'Ada' })
    const value = await client.get('user:1')
    await client.close()
    const nowhere = createClient({ url: 'http://127.0.0.1:${await freePort()}' })
    const error = await nowhere.get('user:1').catch((error) => error)
    await nowhere.close()
    console.log(JSON.stringify({ value, isShardlineError: error instanceof ShardlineError, code: error.code }))`
  const seen = JSON.parse(await sh(consumer, process.execPath, ['--input-type=module', '-e', script]))
  t.same(seen, { value: { name: 'Ada' }, isShardlineError: true, code: 'connection_error' })

  // The README's example, as written, but for the router's address (the test's router listens on port 0).
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const example = /## Client library[^]*?```js\n([^]*?)```/.exec(readme)?.[1]
  t.ok(example?.includes("'http://127.0.0.1:8080'"), "the README's Client library section has its example, addressed to the local cluster's router")
  writeFileSync(join(consumer, 'example.mjs'), example!.replace("'http://127.0.0.1:8080'", JSON.stringify(router.match[1])))
  t.equal(await sh(consumer, process.execPath, ['example.mjs']), "{ name: 'Ada' } null 2n\nnot_a_counter\n", 'the example prints what its comments say')
})

t.test('a TypeScript consumer type-checks against the installed types (moduleResolution nodenext)', async (t) => {
  writeFileSync(join(consumer, 'consumer.ts'), `
import { createClient, ShardlineError, type CacheValue, type ClientOptions, type ShardlineClient } from 'shardline/client'

const options: ClientOptions = { url: 'http://shardline-router:8080', timeoutMs: 200 }
const client: ShardlineClient = createClient(options)
const value: CacheValue | null = await client.get('user:1', { signal: AbortSignal.timeout(100) })
const stored: boolean = await client.set('user:1', { name: 'Ada' }, { ttl: 60 })
const total: bigint | null = await client.incr('visits', 2n)
try {
  await client.del('user:1')
} catch (error) {
  if (error instanceof ShardlineError) console.log(error.code satisfies string, error.status)
}
console.log(value, stored, total)
// @ts-expect-error: the types are real, not any: a ttl is a number
await client.set('k', 'v', { ttl: '60' })
`)
  writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] },
    files: ['consumer.ts'],
  }))
  t.equal(await sh(consumer, process.execPath, [TSC, '-p', 'tsconfig.json']), '', 'no type errors')
})

t.test('npx shardline in the consumer project runs the installed command', async (t) => {
  t.equal((await sh(consumer, 'npx', ['--no-install', 'shardline', 'version'])).trim(), VERSION)
  // The same bin in the repository (where it runs the TypeScript sources).
  t.equal((await sh(ROOT, 'npx', ['--no-install', 'shardline', 'version'])).trim(), VERSION, 'and npx shardline in the repository')
})
