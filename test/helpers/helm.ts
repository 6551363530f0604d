// The Helm binary the chart tests render with ($HELM_BIN, `helm` on PATH, or the one `npx node
// scripts/fetch-helm.ts` puts in node_modules/.cache), and a rendered shard pod's config as the shard loads it.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { HELM_PATH } from '../../scripts/fetch-helm.ts'
import { loadShardConfig, type ShardConfig } from '../../shard/config.ts'

/** A rendered manifest, as much of it as the chart tests read. */
export type Doc = { kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string> } // eslint-disable-line @typescript-eslint/no-explicit-any

export function findHelm(): string | undefined {
  if (process.env.HELM_BIN) return process.env.HELM_BIN
  const onPath = (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'helm')).find((file) => existsSync(file))
  return onPath ?? (existsSync(HELM_PATH) ? HELM_PATH : undefined)
}

/** The shard flags of a StatefulSet's pod at an ordinal, with --config naming a copy of the shard ConfigMap's files, through the shard's own loader. */
export function loadRenderedShardConfig(docs: Doc[], set: Doc, ordinal: number): ShardConfig {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-helm-shard-'))
  try {
    const configMap = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name.endsWith('-shardline-shard'))
    for (const [file, text] of Object.entries(configMap?.data ?? {})) writeFileSync(join(dir, file), text)
    const args = (set.spec.template.spec.containers[0].args as string[]).slice(1).map((arg) => arg
      .replace('$(POD_INDEX)', String(ordinal))
      .replace('$(POD_NAME)', `${set.metadata.name}-${ordinal}`)
      .replace('--config=/etc/shardline/', `--config=${dir}/`))
    return loadShardConfig(args)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
