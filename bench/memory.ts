// Memory per item: RSS growth (VmRSS) per item after loading 1M items (16-byte keys, 100-byte values)
// into a shardline shard, memcached and redis-server, each started fresh; median of 3 runs, ratio to memcached.
import {
  codeVersion,
  formatTable,
  runMain,
  median,
  MemcachedClient,
  parseInfo,
  readRss,
  RespClient,
  sleep,
  startMemcached,
  startRedis,
  startShard,
  stopServer,
  type RunningServer,
} from './lib.ts'

const ITEMS = 1_000_000
const KEY_BYTES = 16
const VALUE_BYTES = 100
const BATCH = 1000
const REPEATS = 3
const SETTLE_MS = 1000
const LOAD_TIMEOUT_MS = 180_000
const TARGET_RATIO = 1.5
const KINDS = ['shard', 'memcached', 'redis'] as const
type Kind = (typeof KINDS)[number]

function key(i: number): string {
  return `key:${String(i).padStart(KEY_BYTES - 4, '0')}`
}

// Every value differs (its index is written into it), so no server can share value bytes.
const valueTemplate = Buffer.alloc(VALUE_BYTES, 'v')
function value(i: number): Buffer {
  const out = Buffer.from(valueTemplate)
  out.write(String(i), 0, 'latin1')
  return out
}

interface Sample {
  emptyRss: number
  loadedRss: number
  perItem: number
  /** What the server itself says the data costs, per item (shard: used_memory_dataset). */
  reportedPerItem: number
  /** Shard only: heapUsed + external per item, from INFO used_memory. */
  heapPerItem?: number
}

async function start(kind: Kind): Promise<RunningServer> {
  if (kind === 'shard') return startShard({ maxMemory: '1gb', policy: 'lru', name: 'membench' })
  if (kind === 'memcached') return startMemcached(1024)
  return startRedis()
}

async function loadResp(port: number, deadline: number): Promise<void> {
  const client = await RespClient.connect(port)
  try {
    for (let from = 0; from < ITEMS; from += BATCH) {
      if (Date.now() > deadline) throw new Error(`loading took longer than ${LOAD_TIMEOUT_MS} ms`)
      const commands: Array<Array<string | Buffer>> = []
      for (let i = from; i < Math.min(ITEMS, from + BATCH); i++) commands.push(['SET', key(i), value(i)])
      const replies = await client.pipeline(commands)
      for (const reply of replies) if (reply !== 'OK') throw new Error(`SET replied ${String(reply)}`)
    }
  } finally {
    client.close()
  }
}

async function loadMemcached(port: number, deadline: number): Promise<void> {
  const client = await MemcachedClient.connect(port)
  try {
    for (let from = 0; from < ITEMS; from += BATCH) {
      if (Date.now() > deadline) throw new Error(`loading took longer than ${LOAD_TIMEOUT_MS} ms`)
      const items: Array<[string, Buffer]> = []
      for (let i = from; i < Math.min(ITEMS, from + BATCH); i++) items.push([key(i), value(i)])
      await client.setMany(items)
    }
  } finally {
    client.close()
  }
}

/** Item count and the server's own idea of the data's size, checking nothing was evicted. */
async function serverReport(server: RunningServer): Promise<{ items: number; dataBytes: number; usedMemory?: number }> {
  if (server.kind === 'memcached') {
    const client = await MemcachedClient.connect(server.port)
    try {
      const stats = await client.stats()
      if (Number(stats.pid) !== server.pid) throw new Error(`memcached stats pid ${stats.pid} is not the spawned pid ${server.pid}`)
      if (Number(stats.evictions) !== 0) throw new Error(`memcached evicted ${stats.evictions} items`)
      return { items: Number(stats.curr_items), dataBytes: Number(stats.bytes) }
    } finally {
      client.close()
    }
  }
  const client = await RespClient.connect(server.port)
  try {
    const info = parseInfo(await client.commandText('INFO'))
    if (Number(info.process_id) !== server.pid) throw new Error(`${server.kind} INFO process_id ${info.process_id} changed from ${server.pid}`)
    if (Number(info.evicted_keys) !== 0) throw new Error(`${server.kind} evicted ${info.evicted_keys} keys`)
    const items = Number(await client.command('DBSIZE'))
    return { items, dataBytes: Number(info.used_memory_dataset), usedMemory: Number(info.used_memory) }
  } finally {
    client.close()
  }
}

async function measure(kind: Kind): Promise<Sample> {
  const server = await start(kind)
  try {
    await sleep(SETTLE_MS)
    const emptyRss = readRss(server.pid)
    const deadline = Date.now() + LOAD_TIMEOUT_MS
    const loadStarted = Date.now()
    if (kind === 'memcached') await loadMemcached(server.port, deadline)
    else await loadResp(server.port, deadline)
    const loadSeconds = (Date.now() - loadStarted) / 1000
    await sleep(SETTLE_MS)
    const loadedRss = readRss(server.pid)
    const report = await serverReport(server)
    if (report.items !== ITEMS) throw new Error(`${kind} holds ${report.items} items, expected ${ITEMS}`)
    const sample: Sample = {
      emptyRss,
      loadedRss,
      perItem: (loadedRss - emptyRss) / ITEMS,
      reportedPerItem: report.dataBytes / ITEMS,
      heapPerItem: kind === 'shard' && report.usedMemory !== undefined ? report.usedMemory / ITEMS : undefined,
    }
    console.log(`  ${kind.padEnd(9)} pid ${server.pid}: RSS ${mb(emptyRss)} -> ${mb(loadedRss)} MB, ${sample.perItem.toFixed(1)} B/item (server reports ${sample.reportedPerItem.toFixed(1)} B/item), loaded in ${loadSeconds.toFixed(1)} s`)
    return sample
  } finally {
    await stopServer(server)
  }
}

function mb(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1)
}

async function main(): Promise<void> {
  const started = Date.now()
  console.log(`code: ${codeVersion()}`)
  const samples: Record<Kind, Sample[]> = { shard: [], memcached: [], redis: [] }
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    console.log(`run ${repeat + 1}/${REPEATS}`)
    for (const kind of KINDS) samples[kind].push(await measure(kind))
  }
  const memcachedPerItem = median(samples.memcached.map((s) => s.perItem))
  const rows = KINDS.map((kind) => {
    const perItem = median(samples[kind].map((s) => s.perItem))
    return [
      kind,
      mb(median(samples[kind].map((s) => s.emptyRss))),
      mb(median(samples[kind].map((s) => s.loadedRss))),
      perItem.toFixed(1),
      (perItem / memcachedPerItem).toFixed(2),
      median(samples[kind].map((s) => s.reportedPerItem)).toFixed(1),
    ]
  })
  console.log(`\n${ITEMS} items, ${KEY_BYTES}-byte keys, ${VALUE_BYTES}-byte values; RSS from /proc/<pid>/status ${SETTLE_MS} ms after loading; median of ${REPEATS} runs\n`)
  console.log(formatTable(['server', 'empty RSS MB', 'loaded RSS MB', 'RSS B/item', 'vs memcached', 'server-reported B/item'], rows))
  console.log('(server-reported: shard used_memory_dataset = sum of entryCost; redis used_memory_dataset; memcached stats bytes)')
  const shardHeap = median(samples.shard.map((s) => s.heapPerItem ?? NaN))
  console.log(`shard INFO used_memory (V8 heapUsed + external) after loading: ${shardHeap.toFixed(1)} B/item`)
  const ratio = median(samples.shard.map((s) => s.perItem)) / memcachedPerItem
  console.log(`\nshard / memcached = ${ratio.toFixed(2)} (target <= ${TARGET_RATIO}) → ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'}`)
  console.log(`\ntotal time ${((Date.now() - started) / 1000).toFixed(0)} s`)
}

runMain(main)
