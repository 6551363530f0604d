// SL.SCAN against a real shard: pages/s, keys/s and shard CPU per page for a full scan at COUNT
// 1000, and how long the snapshot a `SL.SCAN 0` takes blocks the shard (the round trip of
// `SL.SCAN 0 COUNT 1`, and the worst PING round trip from a second client meanwhile).
//   npx node bench/key-scan.ts [--keys 300000,1000000] [--count 1000] [--repeats 3]
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { cpuSeconds, formatTable, killAll, loadAverage, median, RespClient, runMain, startShard, stopServer } from './lib.ts'
import { Store } from '../shard/store.ts'

const { values: options } = parseArgs({
  options: {
    keys: { type: 'string', default: '300000,1000000' },
    count: { type: 'string', default: '1000' },
    repeats: { type: 'string', default: '3' },
  },
})
const KEY_COUNTS = options.keys.split(',').map(Number)
const COUNT = Number(options.count)
const REPEATS = Number(options.repeats)
const VALUE = Buffer.alloc(100, 'v')

/** Round trips of PING, one at a time, until stopped: the shard's responsiveness meanwhile. */
function probe(client: RespClient) {
  const rtts: number[] = []
  let running = true
  const done = (async () => {
    while (running) {
      const started = performance.now()
      await client.command('PING')
      rtts.push(performance.now() - started)
    }
  })()
  return {
    async stop() {
      running = false
      await done
      return rtts
    },
  }
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

async function fill(client: RespClient, keys: number): Promise<void> {
  const perCommand = 500
  for (let start = 0; start < keys; start += perCommand * 20) {
    const commands: Array<Array<string | Buffer>> = []
    for (let c = start; c < Math.min(keys, start + perCommand * 20); c += perCommand) {
      const args: Array<string | Buffer> = ['MSET']
      for (let i = c; i < Math.min(keys, c + perCommand); i++) args.push(`key:${i}`, VALUE)
      commands.push(args)
    }
    await client.pipeline(commands)
  }
}

/** A full scan: pages, keys, seconds and the shard's CPU seconds. */
async function fullScan(client: RespClient, pid: number) {
  const cpuBefore = cpuSeconds(pid)
  const started = performance.now()
  let cursor = '0'
  let pages = 0
  let keys = 0
  do {
    const reply = (await client.command('SL.SCAN', cursor, 'COUNT', String(COUNT))) as [Buffer, Buffer[]]
    cursor = reply[0].toString()
    keys += reply[1].length / 2
    pages++
  } while (cursor !== '0')
  return { pages, keys, seconds: (performance.now() - started) / 1000, cpu: cpuSeconds(pid) - cpuBefore }
}

async function measure(keys: number) {
  const shard = await startShard({ maxMemory: keys > 500_000 ? '1gb' : '512mb', name: 'scan' })
  try {
    const client = await RespClient.connect(shard.port)
    const pinger = await RespClient.connect(shard.port)
    await fill(client, keys)
    const held = Number(await client.command('DBSIZE'))
    if (held !== keys) throw new Error(`the shard holds ${held} keys, not ${keys} (evicted?)`)
    const idle = probe(pinger)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const idleRtts = await idle.stop()

    const snapshots: number[] = []
    const snapshotPings: number[] = []
    const snapshotCpu: number[] = []
    for (let i = 0; i < 5; i++) {
      const during = probe(pinger)
      const cpuBefore = cpuSeconds(shard.pid)
      const started = performance.now()
      await client.command('SL.SCAN', '0', 'COUNT', '1')
      snapshots.push(performance.now() - started)
      snapshotCpu.push((cpuSeconds(shard.pid) - cpuBefore) * 1000)
      snapshotPings.push(Math.max(...(await during.stop())))
    }

    const scans = []
    const scanPings: number[] = []
    for (let i = 0; i < REPEATS; i++) {
      const during = probe(pinger)
      scans.push(await fullScan(client, shard.pid))
      scanPings.push(...(await during.stop()))
    }
    client.close()
    pinger.close()
    return { keys, idleRtts, snapshots, snapshotPings, snapshotCpu, scans, scanPings }
  } finally {
    await stopServer(shard)
  }
}

/** keyList() alone in this process: the snapshot's own cost, without the network. */
function inProcess(keys: number) {
  const store = new Store({ maxMemory: 2 ** 31 })
  for (let i = 0; i < keys; i++) store.set(`key:${i}`, VALUE)
  const times: number[] = []
  const cpu: number[] = []
  for (let i = 0; i < 5; i++) {
    const cpuBefore = process.cpuUsage()
    const started = performance.now()
    store.keyList()
    times.push(performance.now() - started)
    const used = process.cpuUsage(cpuBefore)
    cpu.push((used.user + used.system) / 1000)
  }
  return { times, cpu }
}

runMain(async () => {
  const rows: Array<Array<string | number>> = []
  const blockRows: Array<Array<string | number>> = []
  for (const keys of KEY_COUNTS) {
    const load = loadAverage()
    const result = await measure(keys)
    const local = inProcess(keys)
    const pagesPerSecond = median(result.scans.map((scan) => scan.pages / scan.seconds))
    const keysPerSecond = median(result.scans.map((scan) => scan.keys / scan.seconds))
    const cpuPerPage = median(result.scans.map((scan) => (scan.cpu / scan.pages) * 1e6))
    rows.push([keys, COUNT, result.scans[0].pages, pagesPerSecond.toFixed(0), keysPerSecond.toFixed(0), cpuPerPage.toFixed(0), (cpuPerPage / COUNT).toFixed(2),
      percentile(result.idleRtts, 0.99).toFixed(2), percentile(result.scanPings, 0.99).toFixed(2), Math.max(...result.scanPings).toFixed(1), `${load} → ${loadAverage()}`])
    blockRows.push([keys, median(result.snapshots).toFixed(1), Math.max(...result.snapshots).toFixed(1), median(result.snapshotCpu).toFixed(0), median(result.snapshotPings).toFixed(1), Math.max(...result.snapshotPings).toFixed(1), median(local.times).toFixed(1), median(local.cpu).toFixed(1)])
  }
  console.log(`full scans, ${REPEATS} runs each (medians); PING round trips from a second client meanwhile, ms`)
  console.log(formatTable(['keys', 'COUNT', 'pages', 'pages/s', 'keys/s', 'shard CPU µs/page', 'CPU µs/key', 'PING p99 idle', 'PING p99 scanning', 'PING max scanning', 'load avg'], rows))
  console.log('\nSL.SCAN 0 COUNT 1 (the snapshot), 5 runs, ms: its round trip, the shard CPU it took (10 ms ticks), the worst PING round trip meanwhile, and keyList() alone in this process (wall, CPU)')
  console.log(formatTable(['keys', 'SCAN 0 median', 'SCAN 0 max', 'shard CPU median', 'worst PING median', 'worst PING max', 'keyList() wall median', 'keyList() CPU median'], blockRows))
  await killAll()
})
