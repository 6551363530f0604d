// The memory budget against a real process: ten times --max-memory written through RESP
// evicts, the charged bytes never pass the budget, and RSS stays within budget plus the base.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { startShardProcess } from '../helpers/processes.ts'

const MB = 2 ** 20
const BUDGET = 64 * MB
/** The documented fixed base (README, "Memory"): node, fastify, prom-client, V8's spaces. */
const BASE = 160 * MB

const rss = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024
const field = (info: string, name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)![1])

t.test('writing 10x the budget evicts and keeps RSS within budget + base', async (t) => {
  const shard = await startShardProcess(t, ['--max-memory', '64mb'])
  const redis = new Redis({ port: shard.port, host: '127.0.0.1' })
  t.teardown(() => redis.disconnect())
  const value = Buffer.alloc(1000, 'v')
  const keys = Math.ceil((10 * BUDGET) / value.length)
  let peak = 0
  for (let start = 0; start < keys; start += 1000) {
    const pipeline = redis.pipeline()
    for (let i = start; i < Math.min(keys, start + 1000); i++) pipeline.set(`key:${i}`, value)
    await pipeline.exec()
    if (start % 50_000 === 0) peak = Math.max(peak, rss(shard.pid))
  }
  const info = await redis.info()
  peak = Math.max(peak, rss(shard.pid))
  t.ok(field(info, 'used_memory_dataset') <= BUDGET, `charged bytes ${field(info, 'used_memory_dataset')} within the budget`)
  t.ok(field(info, 'evicted_keys') > keys * 0.8, `evicted ${field(info, 'evicted_keys')} of ${keys}`)
  t.ok(peak <= BUDGET + BASE, `peak RSS ${(peak / MB).toFixed(0)} MB <= ${(BUDGET + BASE) / MB} MB`)
  t.equal(await redis.get(`key:${keys - 1}`), value.toString(), 'the newest writes are there')
})
