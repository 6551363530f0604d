// The container image without a Docker engine: the Dockerfile's shape (node:24-slim, multi-stage,
// production deps, non-root, shardline entrypoint), its copies, and the command run from a production-only install.
import t from 'tap'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { VERSION } from '../../common/version.ts'
import { run, waitFor } from '../helpers/processes.ts'
import { spawn } from 'node:child_process'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> }
/** Node 24 as the repository pins it (a dev dependency), the same major as the image's. */
const NODE = existsSync(join(ROOT, 'node_modules/.bin/node')) ? join(ROOT, 'node_modules/.bin/node') : process.execPath

/** The Dockerfile's instructions, continuation lines joined. */
const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#')).map((line) => {
  const [keyword, ...rest] = line.split(/\s+/)
  return { keyword: keyword.toUpperCase(), args: rest.join(' ') }
})
/** COPY from the build context (not --from a stage): [sources..., destination]. */
const contextCopies = instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from')).map((i) => i.args.split(/\s+/))

function ignored(path: string): boolean {
  return dockerignore.some((pattern) => {
    if (pattern.startsWith('**/')) return new RegExp(`${pattern.slice(3).replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`).test(path)
    return path === pattern || path.startsWith(`${pattern}/`)
  })
}

t.test('the Dockerfile: node:24-slim, multi-stage, production dependencies, non-root, the shardline entrypoint', async (t) => {
  const froms = instructions.filter((i) => i.keyword === 'FROM').map((i) => i.args)
  t.ok(froms.length >= 2, 'multi-stage')
  t.ok(froms.every((from) => from.startsWith('node:24-slim')), `every stage is node:24-slim: ${froms.join(', ')}`)
  t.match(dockerfile, /npm ci --omit=dev/, 'production dependencies only')
  t.ok(instructions.some((i) => i.keyword === 'COPY' && /^--from=\w+ \/app\/node_modules/.test(i.args)), 'node_modules comes from the dependency stage')
  const users = instructions.filter((i) => i.keyword === 'USER')
  t.equal(users.length, 1)
  t.match(users[0].args, /^[1-9]\d*(:[1-9]\d*)?$/, 'a numeric non-root user (Kubernetes runAsNonRoot can verify it)')
  t.ok(instructions.findIndex((i) => i.keyword === 'USER') > instructions.findLastIndex((i) => i.keyword === 'FROM'), 'the final stage runs as that user')
  const entrypoint = JSON.parse(instructions.find((i) => i.keyword === 'ENTRYPOINT')!.args) as string[]
  t.same(entrypoint, ['node', '/app/cli/shardline.ts'], 'the entrypoint is the shardline command')
  t.equal(instructions.find((i) => i.keyword === 'WORKDIR' && i.args === '/app')?.args, '/app', 'the files live in /app, outside node_modules (Node will not strip types there)')
})

t.test('every file the image copies exists and is not left out by .dockerignore', async (t) => {
  t.ok(contextCopies.length >= 5)
  for (const copy of contextCopies) {
    for (const source of copy.slice(0, -1)) {
      t.ok(existsSync(join(ROOT, source)), `${source} exists`)
      t.notOk(ignored(source), `${source} is not in .dockerignore`)
    }
  }
  t.ok(ignored('node_modules') && ignored('.git') && ignored('test/helm/image.test.ts'), 'node_modules, .git and tests stay out of the context')
})

t.test('everything cli/shardline.ts imports is in the image: its own files copied, packages in dependencies', async (t) => {
  const copied = contextCopies.flatMap((copy) => copy.slice(0, -1))
  const seen = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const [, staticSpecifier, dynamicSpecifier] of readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g)) {
      const specifier = staticSpecifier ?? dynamicSpecifier
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier))
      else if (!specifier.startsWith('node:')) packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0])
    }
  }
  visit(join(ROOT, 'cli/shardline.ts'))
  t.ok(seen.size > 20, `${seen.size} modules reachable from cli/shardline.ts`)
  for (const file of seen) {
    const path = relative(ROOT, file)
    t.ok(copied.some((source) => path === source || path.startsWith(`${source}/`)), `${path} is copied into the image`)
  }
  for (const name of packages) t.ok(pkg.dependencies[name], `${name} is a production dependency`)
})

t.test('from a production-only install, the shardline command runs: version, a shard, a router', async (t) => {
  const app = mkdtempSync(join(tmpdir(), 'shardline-image-'))
  t.teardown(() => rmSync(app, { recursive: true, force: true }))
  // What the Dockerfile does, step by step: the lockfile's production dependencies, then its copies.
  for (const file of ['package.json', 'package-lock.json']) cpSync(join(ROOT, file), join(app, file))
  const install = await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--prefix', app])
  t.equal(install.code, 0, install.stderr)
  for (const copy of contextCopies) {
    const [sources, destination] = [copy.slice(0, -1), copy.at(-1)!]
    for (const source of sources) {
      if (source === 'package.json' || source === 'package-lock.json') continue
      cpSync(join(ROOT, source), join(app, destination === './' ? source : destination), { recursive: true })
    }
  }
  const installed = readdirSync(join(app, 'node_modules'))
  for (const dev of Object.keys(pkg.devDependencies).filter((name) => !pkg.dependencies[name])) t.notOk(installed.includes(dev.split('/')[0]) && existsSync(join(app, 'node_modules', dev)), `dev dependency ${dev} is not installed`)

  const version = await run(NODE, [join(app, 'cli/shardline.ts'), 'version'])
  t.equal(version.code, 0, version.stderr)
  t.equal(version.stdout.trim(), VERSION)

  // A shard and a router from the production install, talking to each other (loopback only).
  const started: Array<ReturnType<typeof spawn>> = []
  t.teardown(() => started.forEach((child) => child.exitCode === null && child.kill('SIGKILL')))
  const start = async (args: string[], ready: RegExp) => {
    const child = spawn(NODE, [join(app, 'cli/shardline.ts'), ...args], { cwd: app, env: { ...process.env, SHARDLINE_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] })
    started.push(child)
    let output = ''
    child.stdout!.on('data', (chunk) => (output += chunk))
    child.stderr!.on('data', (chunk) => (output += chunk))
    return waitFor(() => {
      if (child.exitCode !== null) throw new Error(`${args[0]} exited:\n${output}`)
      return ready.exec(output)
    }, 15_000, () => output)
  }
  const [, shardPort] = await start(['shard', '--port', '0', '--admin-port', '0', '--max-memory', '16mb'], /ready: resp 127\.0\.0\.1:(\d+)/)
  const config = join(app, 'router.yaml')
  writeFileSync(config, `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0 }\npools:\n  main:\n    shards: [{ name: s0, primary: 127.0.0.1:${shardPort} }]\n`)
  const [, url] = await start(['router', '--config', config], /shardline router ready: (http:\/\/[\d.:]+)/)
  const stored = await fetch(`${url}/k`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value: 'v' }) })
  t.same(await stored.json(), { stored: true })
  t.same(await (await fetch(`${url}/k`)).json(), { value: 'v' })
})
