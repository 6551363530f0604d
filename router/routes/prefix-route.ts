// PrefixRoute: picks the child route (a pool) by the longest key prefix that matches, or the
// default when none does (the tenant route asks it for a tenant's own key, before the namespace).
import type { Op, OpResult, Route, RouteStep } from './route.ts'

/** The pool a key goes to; prefix: the one it matched (absent for the default pool). */
export interface PrefixChoice {
  route: Route
  name: string
  prefix?: string
}

export class PrefixRoute implements Route {
  private readonly prefixes: Array<{ prefix: string; route: Route; name: string }>
  private readonly fallback: { route: Route; name: string }

  constructor(prefixes: Array<{ prefix: string; route: Route; name: string }>, fallback: { route: Route; name: string }) {
    this.prefixes = [...prefixes].sort((a, b) => b.prefix.length - a.prefix.length)
    this.fallback = fallback
  }

  route(op: Op): Promise<OpResult> {
    return this.select(op.key).route.route(op)
  }

  explain(key: string): RouteStep[] {
    const chosen = this.select(key)
    return [this.step(chosen), ...chosen.route.explain(key)]
  }

  /** Why a key went to the pool select chose. */
  step(chosen: PrefixChoice): RouteStep {
    const why = chosen.prefix !== undefined ? `longest matching prefix "${chosen.prefix}"` : 'no prefix matches: default pool'
    return { route: 'prefix', decision: chosen.name, why }
  }

  describe(): unknown {
    return {
      prefixes: this.prefixes.map(({ prefix, name, route }) => ({ prefix, pool: name, route: route.describe() })),
      default: { pool: this.fallback.name, route: this.fallback.route.describe() },
    }
  }

  select(key: string): PrefixChoice {
    for (const entry of this.prefixes) if (key.startsWith(entry.prefix)) return entry
    return this.fallback
  }
}
