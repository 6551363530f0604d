// Hit ratio of the shard's Store (in-process, no network) for the lru, fifo and lfu policies on
// seeded Zipf 0.8 / 1.0 / 1.2 read-through streams over 1M keys, cache holding 1% and 10% of them.
import os from 'node:os'
import { isMainThread, parentPort, Worker } from 'node:worker_threads'
import { ENTRY_HEADER_BYTES } from '../shard/entry.ts'
import { entryCost, Store, type EvictionPolicy } from '../shard/store.ts'
import { codeVersion, formatTable, median } from './lib.ts'
import { createRandom, requestStream, shuffledRanks, zipfCdf } from './zipf.ts'

const KEYS = 1_000_000
const KEY_BYTES = 16
const VALUE = 'v'.repeat(8)
const ZIPF_EXPONENTS = [0.8, 1.0, 1.2]
const CACHE_FRACTIONS = [0.01, 0.1]
const POLICIES: EvictionPolicy[] = ['lru', 'fifo', 'lfu']
const WARMUP_REQUESTS = Number(process.env.HIT_RATIO_WARMUP ?? 1_000_000)
const MEASURED_REQUESTS = Number(process.env.HIT_RATIO_REQUESTS ?? 1_500_000)
const SEEDS = [1, 2, 3]
/** A task is only started if, at the pace so far, it ends within this (bounds the run on a busy machine). */
const TIME_BUDGET_MS = 5 * 60_000

/** Read-through over the stream; returns the hit ratio of the part after the warm-up. */
function simulate(policy: EvictionPolicy, capacity: number, keys: string[], stream: Int32Array): number {
  const cost = entryCost(keys[0], 'x'.repeat(ENTRY_HEADER_BYTES + VALUE.length))
  const store = new Store({ maxMemory: capacity * cost, policy })
  let hits = 0
  for (let i = 0; i < stream.length; i++) {
    const key = keys[stream[i]]
    if (store.get(key) !== undefined) {
      if (i >= WARMUP_REQUESTS) hits++
    } else {
      store.set(key, VALUE)
    }
  }
  if (store.size > capacity) throw new Error(`${policy} store holds ${store.size} entries, more than ${capacity} (entry cost ${cost})`)
  return hits / (stream.length - WARMUP_REQUESTS)
}

/** The budget holds exactly `capacity` entries: fill with more distinct keys and count what stays. */
function checkCapacity(capacity: number, keys: string[]): void {
  const cost = entryCost(keys[0], 'x'.repeat(ENTRY_HEADER_BYTES + VALUE.length))
  const store = new Store({ maxMemory: capacity * cost, policy: 'lru' })
  for (let i = 0; i < capacity + 100; i++) store.set(keys[i], VALUE)
  if (store.size !== capacity || store.bytes !== capacity * cost) {
    throw new Error(`a budget of ${capacity} x ${cost} bytes holds ${store.size} entries (${store.bytes} bytes charged), expected ${capacity}`)
  }
}

function makeKeys(): string[] {
  const keys: string[] = []
  for (let i = 0; i < KEYS; i++) keys.push(`key:${String(i).padStart(KEY_BYTES - 4, '0')}`)
  if (keys.some((k) => k.length !== KEY_BYTES)) throw new Error('keys must be fixed-size')
  return keys
}

/** One seed and one Zipf exponent: a request stream, replayed for every cache size and policy. */
interface Task {
  seed: number
  s: number
}

interface TaskResult extends Task {
  /** Hit ratio by `${fraction}/${policy}`. */
  ratios: Record<string, number>
  seconds: number
}

function runTask(task: Task, keys: string[]): TaskResult {
  const started = Date.now()
  // The seed fixes the rank→key shuffle; each exponent draws its stream from its own generator.
  const rankToKey = shuffledRanks(KEYS, createRandom(task.seed))
  const random = createRandom(task.seed * 1000 + Math.round(task.s * 100))
  const stream = requestStream(zipfCdf(KEYS, task.s), rankToKey, WARMUP_REQUESTS + MEASURED_REQUESTS, random)
  const ratios: Record<string, number> = {}
  for (const fraction of CACHE_FRACTIONS) {
    for (const policy of POLICIES) ratios[`${fraction}/${policy}`] = simulate(policy, Math.round(KEYS * fraction), keys, stream)
  }
  return { ...task, ratios, seconds: (Date.now() - started) / 1000 }
}

// Worker threads (one per core) each take (seed, exponent) tasks until none are left.
function workerLoop(): void {
  const keys = makeKeys()
  parentPort!.on('message', (task: Task) => parentPort!.postMessage(runTask(task, keys)))
}

async function runTasks(tasks: Task[], started: number, onResult: (result: TaskResult) => void): Promise<number> {
  const queue = [...tasks]
  const durations: number[] = []
  const workers: Worker[] = []
  let done = 0
  try {
    await new Promise<void>((resolve, reject) => {
      const threads = Math.max(1, Math.min(os.availableParallelism(), queue.length))
      let idle = 0
      const next = (worker: Worker) => {
        // Start a task only if, at the pace so far, it ends within the time budget.
        const expected = durations.length === 0 ? 0 : median(durations) * 1000
        const task = Date.now() - started + expected <= TIME_BUDGET_MS ? queue.shift() : undefined
        if (task) {
          worker.postMessage(task)
          return
        }
        if (++idle === threads) resolve()
      }
      for (let i = 0; i < threads; i++) {
        const worker = new Worker(new URL(import.meta.url))
        workers.push(worker)
        worker.on('error', reject)
        worker.on('exit', (code) => {
          if (code !== 0) reject(new Error(`hit-ratio worker exited with code ${code}`))
        })
        worker.on('message', (result: TaskResult) => {
          done++
          durations.push(result.seconds)
          onResult(result)
          next(worker)
        })
        next(worker)
      }
    })
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()))
  }
  return done
}

async function main(): Promise<void> {
  const started = Date.now()
  const keys = makeKeys()
  const cost = entryCost(keys[0], 'x'.repeat(ENTRY_HEADER_BYTES + VALUE.length))
  console.log(`code: ${codeVersion()}`)
  console.log(`${KEYS} keys of ${KEY_BYTES} bytes, ${VALUE.length}-byte values, entry cost ${cost} bytes; ${WARMUP_REQUESTS} warm-up + ${MEASURED_REQUESTS} measured requests per cell; seeds ${SEEDS.join(', ')}`)
  for (const fraction of CACHE_FRACTIONS) checkCapacity(Math.round(KEYS * fraction), keys)

  // ratios[`${s}/${fraction}/${policy}`] = hit ratio per seed
  const ratios = new Map<string, number[]>()
  const cell = (s: number, fraction: number, policy: string) => `${s}/${fraction}/${policy}`
  const tasks = SEEDS.flatMap((seed) => ZIPF_EXPONENTS.map((s) => ({ seed, s })))
  const done = await runTasks(tasks, started, (result) => {
    for (const fraction of CACHE_FRACTIONS) {
      for (const policy of POLICIES) {
        const name = cell(result.s, fraction, policy)
        ratios.set(name, [...(ratios.get(name) ?? []), result.ratios[`${fraction}/${policy}`]])
      }
      const line = POLICIES.map((p) => `${p} ${(100 * result.ratios[`${fraction}/${p}`]).toFixed(2)}%`).join('  ')
      console.log(`  seed ${result.seed} zipf ${result.s.toFixed(1)} cache ${(fraction * 100).toFixed(0).padStart(2)}%: ${line}  (${((Date.now() - started) / 1000).toFixed(0)} s)`)
    }
  })

  const rows: Array<Array<string | number>> = []
  const verdicts: string[] = []
  for (const s of ZIPF_EXPONENTS) {
    const cdf = zipfCdf(KEYS, s)
    for (const fraction of CACHE_FRACTIONS) {
      // Upper bound for any policy on an independent-reference stream: the request share of the top ranks.
      const ideal = cdf[Math.round(KEYS * fraction) - 1]
      const values = POLICIES.map((p) => median(ratios.get(cell(s, fraction, p)) ?? []))
      const runs = Math.min(...POLICIES.map((p) => ratios.get(cell(s, fraction, p))?.length ?? 0))
      rows.push([s.toFixed(1), `${(fraction * 100).toFixed(0)}%`, ...values.map((v) => (100 * v).toFixed(1)), (100 * ideal).toFixed(1), runs])
      const [lru, , lfu] = values
      if (lfu < lru - 0.05) verdicts.push(`zipf ${s.toFixed(1)} cache ${fraction * 100}%: lfu ${(100 * (lru - lfu)).toFixed(1)} points below lru`)
    }
  }
  console.log(`\nhit % after warm-up, median over seeds (each seed: its own key shuffle and request streams; runs = seeds that finished)\n`)
  console.log(formatTable(['zipf', 'cache size', 'lru', 'fifo', 'lfu', 'ideal', 'runs'], rows))
  console.log('(ideal = request share of the most popular keys that fit: the best any policy can do on this stream)')
  const lfuAt1 = median(ratios.get(cell(1.0, 0.01, 'lfu')) ?? [])
  console.log(`\nlfu at zipf 1.0, 1%: ${(100 * lfuAt1).toFixed(1)}% (target >= 50%) → ${lfuAt1 >= 0.5 ? 'met' : 'NOT met'}`)
  console.log(verdicts.length === 0 ? 'lfu is never more than 5 points below lru → met' : `lfu more than 5 points below lru → NOT met:\n  ${verdicts.join('\n  ')}`)
  if (done < tasks.length) console.log(`time budget of ${TIME_BUDGET_MS / 1000} s: ran ${done} of ${tasks.length} (seed, zipf) tasks`)
  console.log(`\ntotal time ${((Date.now() - started) / 1000).toFixed(0)} s`)
}

if (isMainThread) {
  main().catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
} else {
  workerLoop()
}
