// Which keys the rebalance job moves: a key's home under the config's ring (derived keys under
// the hot-key rule), and what to do with an entry found on a shard that is not its home.
import type { HashRing } from '../common/ring.ts'
import type { PoolConfig } from '../router/config.ts'
import { derivedKeyHome, poolRing } from '../router/pool-layout.ts'
import { parseDerivedKey } from '../router/routes/hot-key-route.ts'
import { entryExpiresAt, entryIsCounter } from '../shard/entry.ts'

/**
 * For an entry off its home (one on its home is only counted as scanned):
 * - move: SL.PUTV to the home, then SL.DROP here. Values and tombstones alike: a delete through a
 *   router on the old config must reach the new owner too.
 * - merge-counter: a counter; PUTV when the home holds none of its own, else INCRBY the sum there.
 * - add: a sub-counter; INCRBY its sum into the home's, then drop it here.
 * - drop: a hot-key copy off its home: a cache of its base key, nothing to keep.
 * An expired entry is left to expire where it is.
 */
export type Action = 'move' | 'merge-counter' | 'add' | 'drop'

export class PoolPlacement {
  readonly ring: HashRing
  private readonly pool: PoolConfig

  constructor(pool: PoolConfig, pointsPerShard: number) {
    this.pool = pool
    this.ring = poolRing(pool, pointsPerShard)
  }

  /** The shard a router on this config sends key to. */
  home(key: string): string {
    return derivedKeyHome(this.ring, key, this.pool.hotKeys) ?? this.ring.lookup(key)
  }

  /**
   * What the job does with key's entry found off its home (on a shard home(key) does not name),
   * given the entry's header in time-left form as SL.SCAN gives it.
   */
  offHomeAction(key: string, header: string): Action | 'expired' {
    // Time left of 1 ms is what rebasing gives an entry already past its expiry.
    const timeLeft = entryExpiresAt(header)
    if (timeLeft !== 0 && timeLeft <= 1) return 'expired'
    const derived = parseDerivedKey(key)
    if (derived?.kind === 'copy') return 'drop'
    if (derived?.kind === 'sub-counter') return 'add'
    return entryIsCounter(header) ? 'merge-counter' : 'move'
  }
}
