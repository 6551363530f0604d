// The migration window a reload opens or carries over: the rings a pool's keys hashed onto before
// its owners changed, read through by the warm-up route until the window's deadline.
import type { HashRing } from '../common/ring.ts'

export interface Migration {
  /** Previous rings, newest first. */
  readonly rings: readonly HashRing[]
  /** Date.now() at which the window ends. */
  readonly deadline: number
}

export const NO_MIGRATION: Migration = { rings: [], deadline: 0 }

/** Previous rings kept when owners change again within a window; older ones are dropped. */
export const MAX_PREVIOUS_RINGS = 4

/** Whether two rings place every key on the same shard: same names, same points per name. */
export function sameOwners(a: HashRing, b: HashRing): boolean {
  return a.pointsPerNode === b.pointsPerNode && a.nodes.length === b.nodes.length && a.nodes.every((name, i) => name === b.nodes[i])
}

/**
 * The window after a reload that moves a pool from before.ring to ring: a change of owners opens a
 * new one (keeping the running one's rings), no change carries the running one over as it is,
 * and windowMs 0 turns warm-up off.
 */
export function nextMigration(before: { ring: HashRing; migration: Migration } | undefined, ring: HashRing, windowMs: number, now: number): Migration {
  if (!before || windowMs === 0) return NO_MIGRATION
  const running = before.migration.deadline > now ? before.migration : NO_MIGRATION
  if (sameOwners(before.ring, ring)) return running
  const rings = [before.ring, ...running.rings].filter((previous) => !sameOwners(previous, ring)).slice(0, MAX_PREVIOUS_RINGS)
  return { rings, deadline: now + windowMs }
}
