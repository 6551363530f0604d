// A file whose text is re-read when it changes: its directory is watched (a Kubernetes Secret or
// ConfigMap volume swaps a symlink next to the file, which a watch on the file itself misses).
import { watch, readFileSync, type FSWatcher } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'

/** Reads coalesced after a burst of events (an editor writes, renames, chmods). */
const DEBOUNCE_MS = 50

export class WatchedFile {
  readonly path: string
  private text: string
  private readonly watcher: FSWatcher | null
  private debounce: NodeJS.Timeout | null = null

  /**
   * Reads the file now (a missing or unreadable one throws); onChange hears the new text whenever
   * it differs, or the error when a later read fails (the last text it read stays current).
   */
  constructor(path: string, onChange: (text: string | Error) => void = () => {}) {
    this.path = resolve(path)
    this.text = readFileSync(this.path, 'utf8')
    const name = basename(this.path)
    this.watcher = watch(dirname(this.path), (_event, changed) => {
      // Kubernetes swaps "..data"; editors write temporary names: any change in the folder may be ours.
      if (changed !== null && changed !== name && !changed.startsWith('..')) return
      if (this.debounce) clearTimeout(this.debounce)
      this.debounce = setTimeout(() => {
        this.debounce = null
        let next: string
        try {
          next = readFileSync(this.path, 'utf8')
        } catch (error) {
          onChange(error as Error)
          return
        }
        if (next === this.text) return
        this.text = next
        onChange(next)
      }, DEBOUNCE_MS)
    })
    this.watcher.unref()
  }

  get current(): string {
    return this.text
  }

  close(): void {
    if (this.debounce) clearTimeout(this.debounce)
    this.watcher?.close()
  }
}
