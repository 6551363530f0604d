// PrefixRoute: picks the child route (a pool) by the longest key prefix that matches, or the
// default when none does.
import type { Op, OpResult, Route, RouteStep } from './route.ts'

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
    const why = 'prefix' in chosen ? `longest matching prefix "${chosen.prefix}"` : 'no prefix matches: default pool'
    return [{ route: 'prefix', decision: chosen.name, why }, ...chosen.route.explain(key)]
  }

  describe(): unknown {
    return {
      prefixes: this.prefixes.map(({ prefix, name, route }) => ({ prefix, pool: name, route: route.describe() })),
      default: { pool: this.fallback.name, route: this.fallback.route.describe() },
    }
  }

  private select(key: string): { route: Route; name: string; prefix?: string } {
    for (const entry of this.prefixes) if (key.startsWith(entry.prefix)) return entry
    return this.fallback
  }
}
