// Parses human byte sizes from flags and YAML ("64mb", "4gb", "1048576") into byte counts.
// Units are binary (1kb = 1024 bytes), as memcached and Redis read them.

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 }

export function parseByteSize(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) throw new Error(`invalid byte size ${input}: must be a whole number of bytes`)
    return input
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input)
  const unit = match ? UNITS[match[2].toLowerCase()] : undefined
  if (!match || unit === undefined) throw new Error(`invalid byte size "${input}": use bytes or a number with kb, mb or gb`)
  return Math.floor(Number(match[1]) * unit)
}
