// scripts/build-package.ts: the package's build, run by `npm pack` (prepack): dist/ becomes a compiled twin
// of the package root, because the code finds some files relative to itself and must find them there too.
import { execFileSync } from 'node:child_process'
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const DIST = `${ROOT}dist/`

rmSync(DIST, { recursive: true, force: true })
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
execFileSync(process.execPath, [tsc, '-p', `${ROOT}tsconfig.build.json`], { stdio: 'inherit' })

// common/version.ts reads ../package.json (only its version) and `shardline cluster` defaults to
// ../config/local.yaml: from dist/common and dist/cli, those are dist/package.json and dist/config.
// "type" makes Node load dist/'s .js files as ES modules, as the root package.json does for the sources.
const { version } = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }
writeFileSync(`${DIST}package.json`, `${JSON.stringify({ version, type: 'module' }, null, 2)}\n`)
cpSync(`${ROOT}config`, `${DIST}config`, { recursive: true })
