// The Helm binary the chart tests render with: $HELM_BIN, `helm` on PATH, or the one
// `npx node scripts/fetch-helm.ts` puts in node_modules/.cache; undefined when there is none.
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { HELM_PATH } from '../../scripts/fetch-helm.ts'

export function findHelm(): string | undefined {
  if (process.env.HELM_BIN) return process.env.HELM_BIN
  const onPath = (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'helm')).find((file) => existsSync(file))
  return onPath ?? (existsSync(HELM_PATH) ? HELM_PATH : undefined)
}
