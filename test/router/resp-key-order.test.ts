// One RESP connection's order on each key: a read after a write waits for it, reads between writes
// run together, a write waits for every op before it on its key, and other keys never wait.
import t from 'tap'
import { KeyOrder } from '../../router/resp-key-order.ts'
import type { Op, OpResult } from '../../router/routes/route.ts'

/** Ops as sent, each settled by the test (the oldest of a name first), in any order. */
function harness() {
  const started: string[] = []
  /** Resolvers by op name, oldest first. */
  const finish = new Map<string, Array<() => void>>()
  const send = (op: Op) => {
    const name = `${op.kind} ${op.key}${op.kind === 'set' ? ` ${op.value}` : ''}`
    started.push(name)
    return new Promise<OpResult>((resolve) => finish.set(name, [...(finish.get(name) ?? []), () => resolve({ kind: 'get', found: false })]))
  }
  const settle = async (name: string) => {
    finish.get(name)!.shift()!()
    // Let the chained sends run.
    for (let i = 0; i < 5; i++) await Promise.resolve()
  }
  return { started, settle, send }
}

const get = (key: string): Op => ({ kind: 'get', key })
const set = (key: string, value: string): Op => ({ kind: 'set', key, value: Buffer.from(value), flags: 0, version: 1 })

t.test('reads wait for the write before them; a write waits for all before it; keys are independent', async (t) => {
  const order = new KeyOrder()
  const { started, settle, send } = harness()
  const ops = [set('k', '1'), get('k'), get('k'), get('other'), set('k', '2'), get('k')].map((op) => order.route(op, send))
  t.same(started, ['set k 1', 'get other'], 'only the first write and the other key go at once')
  await settle('set k 1')
  t.same(started, ['set k 1', 'get other', 'get k', 'get k'], 'then both reads, together')
  await settle('get k')
  t.equal(started.length, 4, 'the second write waits for both reads')
  await settle('get k')
  t.same(started.slice(4), ['set k 2'])
  await settle('set k 2')
  t.same(started.slice(5), ['get k'])
  await settle('get k')
  await settle('get other')
  await Promise.all(ops)
  t.equal((order as unknown as { keys: Map<string, unknown> }).keys.size, 0, 'nothing in flight, nothing kept')
})
