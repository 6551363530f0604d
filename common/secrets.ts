// Secrets as configs give them: literal text, a SHA-256 hash ("sha256:<hex>", for what is only
// verified), an environment variable, or a file of one secret per line that is re-read when it changes.
// Verification hashes the candidate and compares digests with timingSafeEqual.
import { hash, timingSafeEqual } from 'node:crypto'
import { ConfigError } from './validate.ts'
import { WatchedFile } from './watched-file.ts'

/** {env}: read once, at start (and on a config reload); {file}: watched, so a mounted Secret rotates in place. */
export type SecretSource = string | { file: string } | { env: string }

/** The config schema of one secret source. */
export const secretSourceSchema = {
  description: 'must be a secret: text, "sha256:<64 hex digits>", {env: NAME} or {file: path}',
  oneOf: [
    { type: 'string', minLength: 1 },
    { type: 'object', additionalProperties: false, required: ['file'], properties: { file: { type: 'string', minLength: 1 } } },
    { type: 'object', additionalProperties: false, required: ['env'], properties: { env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } } },
  ],
} as const

/** The user peers (routers, replicas, jobs) authenticate to shards as: AUTH shardline <internal password>. */
export const INTERNAL_USER = 'shardline'

const HASHED = /^sha256:([0-9a-f]{64})$/i

/** One-shot: crypto.hash skips the Hash object createHash makes, which a check per request feels. */
export function sha256(text: string): Buffer {
  return hash('sha256', text, 'buffer')
}

/** One secret's form: its text, or only its digest. */
interface SecretValue {
  digest: Buffer
  text: string | null
}

/**
 * The secrets of one credential (a tenant's tokens, a shard's passwords), several at once so that
 * one can be rotated in before the old one is removed. Files are watched: a changed file applies
 * within a second, and an unreadable one keeps its last good secrets (and is said once in the log).
 */
export class SecretSet {
  readonly name: string
  private readonly literals: SecretValue[]
  private readonly files: WatchedFile[] = []
  private fromFiles: SecretValue[][] = []
  private all: SecretValue[] = []
  private changes = 0

  constructor(name: string, sources: readonly SecretSource[], onProblem: (message: string) => void = () => {}) {
    this.name = name
    this.literals = sources.flatMap((source) => {
      if (typeof source === 'string') return [toValue(source)]
      if (!('env' in source)) return []
      const text = process.env[source.env]
      if (text === undefined || text === '') throw new ConfigError(`${name}: environment variable ${source.env} is not set`)
      return [toValue(text)]
    })
    for (const source of sources) {
      if (typeof source === 'string' || !('file' in source)) continue
      const index = this.files.length
      let file: WatchedFile
      try {
        file = new WatchedFile(source.file, (text) => {
          if (text instanceof Error) return onProblem(`${name}: cannot read ${source.file} (${text.message}); its last secrets stay in use`)
          this.fromFiles[index] = fileValues(text)
          this.collect()
        })
      } catch (error) {
        this.close()
        throw new ConfigError(`${name}: cannot read the secret file ${source.file}: ${(error as Error).message}`)
      }
      this.files.push(file)
      this.fromFiles.push(fileValues(file.current))
    }
    this.collect()
    if (this.all.length === 0) {
      this.close()
      throw new ConfigError(`${name}: no secret given (its files are empty)`)
    }
  }

  /** Bumps whenever a file changed what the set holds (for caches of verified secrets). */
  get generation(): number {
    return this.changes
  }

  /** True when candidate is one of the secrets: compared as SHA-256 digests, in constant time per secret. */
  matches(candidate: string): boolean {
    return this.matchesDigest(sha256(candidate))
  }

  /** matches() for a candidate already hashed (one hash checked against several sets). */
  matchesDigest(digest: Buffer): boolean {
    let found = false
    for (const value of this.all) if (timingSafeEqual(digest, value.digest)) found = true
    return found
  }

  /** The secret to present to a peer (the first one given); a hash cannot be presented. */
  presented(): string {
    const text = this.all[0].text
    if (text === null) throw new ConfigError(`${this.name}: a secret given as sha256:… can only be checked, not sent to a peer`)
    return text
  }

  close(): void {
    for (const file of this.files) file.close()
  }

  private collect(): void {
    this.all = [...this.literals, ...this.fromFiles.flat()]
    this.changes++
  }
}

function toValue(text: string): SecretValue {
  const hashed = HASHED.exec(text)
  return hashed ? { digest: Buffer.from(hashed[1], 'hex'), text: null } : { digest: sha256(text), text }
}

function fileValues(text: string): SecretValue[] {
  return text.split('\n').map((line) => line.trim()).filter((line) => line !== '').map(toValue)
}

/** The token of an Authorization header ("Bearer <token>"); undefined when there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || header.length < 8 || header.slice(0, 7).toLowerCase() !== 'bearer ') return undefined
  return header.slice(7).trim()
}
