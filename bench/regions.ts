// Cross-region lag (issue 15): two regions as real processes (test/helpers/two-regions.ts), east's shards shipping
// to west's router through a link proxy with 0 or 50 ms added one-way delay, under a paced write load into east.
//   - load: SETs of 100-byte values over 100,000 keys to east's router RESP port, paced at --rates (writes/s),
//     pipelined per 1 ms tick; the achieved rate (acknowledged writes/s) is reported beside the asked one;
//   - probes: a probe key SET in east every --probe-ms; every --poll-ms the probes not yet seen are GET from
//     west's router in one pipeline; sent in east -> first seen in west is one lag sample (so a sample
//     includes up to one poll interval); side by side, the same probes polled on east's own replicas (the
//     local asynchronous hop, shard to shard), and the east write's own round trip;
//   - each cell (rate x delay) runs --seconds after --warmup-seconds of load; target p99 <= delay + 20 ms.
// Options: --seconds 10 --warmup-seconds 1 --rates 1000,5000 --delays 0,50 --probe-ms 20 --poll-ms 2 --shards 1,2 --hello-ms 1000.
// Prints a table; the lead appends it to bench/RESULTS.md from a run on an idle machine.
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { percentile } from '../test/helpers/replicated-cluster.ts'
import { startTwoRegions, type TwoRegions } from '../test/helpers/two-regions.ts'
import { PacedWriter, RespClient, codeVersion, formatTable, loadAverage, runMain, sleep } from './lib.ts'

const VALUE_BYTES = 100
const WRITER_KEYSPACE = 100_000
const PROBE_TIMEOUT_MS = 10_000
const TARGET_SLACK_MS = 20

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    'warmup-seconds': { type: 'string', default: '1' },
    rates: { type: 'string', default: '1000,5000' },
    delays: { type: 'string', default: '0,50' },
    'probe-ms': { type: 'string', default: '20' },
    'poll-ms': { type: 'string', default: '2' },
    // Shard pairs in east and west: fewer processes on a 2-core machine, less scheduling noise in the tail.
    shards: { type: 'string', default: '1,2' },
    // The product's default; the tests use 200 ms to notice restarts sooner.
    'hello-ms': { type: 'string', default: '1000' },
  },
  strict: true,
})
const SECONDS = Number(flags.seconds)
const WARMUP_SECONDS = Number(flags['warmup-seconds'])
const RATES = flags.rates.split(',').map(Number)
const DELAYS = flags.delays.split(',').map(Number)
const PROBE_MS = Number(flags['probe-ms'])
const POLL_MS = Number(flags['poll-ms'])
const [EAST_SHARDS, WEST_SHARDS] = flags.shards.split(',').map(Number)
const HELLO_MS = Number(flags['hello-ms'])
if (![SECONDS, PROBE_MS, POLL_MS, EAST_SHARDS, WEST_SHARDS, HELLO_MS, ...RATES].every((n) => Number.isFinite(n) && n > 0) || ![WARMUP_SECONDS, ...DELAYS].every((n) => Number.isFinite(n) && n >= 0)) {
  throw new Error('usage: bench/regions.ts [--seconds s] [--warmup-seconds s] [--rates w/s,w/s] [--delays ms,ms] [--probe-ms ms] [--poll-ms ms] [--shards east,west] [--hello-ms ms]')
}

/** Probe keys SET in east every probeMs; polled where they should show (west's router, or east's replicas) until seen. */
class Probes {
  readonly samples: number[] = []
  timeouts = 0
  errors = 0
  /** Round trips of the probe SETs in east: the local write's own latency, inside every sample. */
  readonly writeRoundTrips: number[] = []
  /** Acknowledged in east -> first seen in west: the cross-region part alone. */
  readonly afterAck: number[] = []
  private readonly pending = new Map<string, { sentAt: number; ackedAt: number }>()
  private next = 0
  private readonly timers: NodeJS.Timeout[]
  private polling = false
  private readonly cell: string
  private readonly east: RespClient
  private readonly seenIn: RespClient[]

  constructor(cell: string, east: RespClient, seenIn: RespClient[]) {
    this.cell = cell
    this.east = east
    this.seenIn = seenIn
    this.timers = [setInterval(() => this.send(), PROBE_MS), setInterval(() => void this.poll(), POLL_MS)]
  }

  /** Stops sending; waits for the probes in flight to be seen (or time out). */
  async stop(): Promise<void> {
    clearInterval(this.timers[0])
    const deadline = performance.now() + PROBE_TIMEOUT_MS
    while (this.pending.size > 0 && performance.now() < deadline) await sleep(POLL_MS)
    clearInterval(this.timers[1])
    this.timeouts += this.pending.size
  }

  private send(): void {
    const key = `probe:${this.cell}:${this.next++}`
    const sentAt = performance.now()
    this.east.command('SET', key, String(sentAt)).then(() => {
      const ackedAt = performance.now()
      this.writeRoundTrips.push(ackedAt - sentAt)
      this.pending.set(key, { sentAt, ackedAt })
    }, () => this.errors++)
  }

  /** One pipeline of GETs of every probe not seen yet, to each place it may show; one poll in flight at a time. */
  private async poll(): Promise<void> {
    if (this.polling || this.pending.size === 0) return
    this.polling = true
    const keys = [...this.pending.keys()]
    try {
      const replies = await Promise.all(this.seenIn.map((client) => client.pipeline(keys.map((key) => ['GET', key]))))
      const seenAt = performance.now()
      keys.forEach((key, i) => {
        const { sentAt, ackedAt } = this.pending.get(key)!
        if (replies.some((fromOne) => Buffer.isBuffer(fromOne[i]))) {
          this.samples.push(seenAt - sentAt)
          this.afterAck.push(seenAt - ackedAt)
          this.pending.delete(key)
        } else if (seenAt - sentAt > PROBE_TIMEOUT_MS) {
          this.timeouts++
          this.pending.delete(key)
        }
      })
    } catch {
      this.errors++
    } finally {
      this.polling = false
    }
  }
}

interface Cell {
  rate: number
  delayMs: number
  achieved: number
  writeErrors: number
  probes: number
  timeouts: number
  p50: number
  p99: number
  max: number
  afterAckP50: number
  afterAckP99: number
  writeP99: number
  /** The same probes' lag to east's own replicas: the local asynchronous hop, side by side. */
  replicaP50: number
  replicaP99: number
}

async function measure(regions: TwoRegions, rate: number, delayMs: number): Promise<Cell> {
  for (const link of regions.links) link.delayMs = delayMs
  const replicaPorts = regions.east.pairs.map((pair) => pair.replica.port)
  const clients = await Promise.all([regions.east.respPort, regions.east.respPort, regions.east.respPort, regions.west.respPort, ...replicaPorts].map((port) => RespClient.connect(port)))
  const [writerClient, probeClient, replicaProbeClient, westClient, ...replicaClients] = clients
  try {
    const writer = new PacedWriter(writerClient, rate, { keyPrefix: 'load:', keyspace: WRITER_KEYSPACE, valueBytes: VALUE_BYTES })
    writer.start()
    await sleep(WARMUP_SECONDS * 1000)
    const ackedBefore = writer.acked
    const startedAt = performance.now()
    const probes = new Probes(`${rate}-${delayMs}`, probeClient, [westClient])
    const replicaProbes = new Probes(`${rate}-${delayMs}-local`, replicaProbeClient, replicaClients)
    await sleep(SECONDS * 1000)
    const achieved = ((writer.acked - ackedBefore) * 1000) / (performance.now() - startedAt)
    await Promise.all([writer.stop(), probes.stop(), replicaProbes.stop()])
    const { samples } = probes
    return { rate, delayMs, achieved, writeErrors: writer.errors, probes: samples.length, timeouts: probes.timeouts + probes.errors, p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples), afterAckP50: percentile(probes.afterAck, 50), afterAckP99: percentile(probes.afterAck, 99), writeP99: percentile(probes.writeRoundTrips, 99), replicaP50: percentile(replicaProbes.samples, 50), replicaP99: percentile(replicaProbes.samples, 99) }
  } finally {
    for (const client of clients) client.close()
  }
}

async function main(): Promise<void> {
  const cleanups: (() => unknown)[] = []
  try {
    const regions = await startTwoRegions({ teardown: (fn) => cleanups.push(fn) }, {
      regions: [{ name: 'east', id: 1, shards: EAST_SHARDS }, { name: 'west', id: 2, shards: WEST_SHARDS }],
      helloMs: HELLO_MS,
    })
    // Each shipper's first full scan (and reconnects while the peer router started) are over before any cell.
    await regions.waitCaughtUp()
    const cells: Cell[] = []
    for (const delayMs of DELAYS) {
      for (const rate of RATES) {
        const cell = await measure(regions, rate, delayMs)
        console.log(`rate ${rate}/s, delay ${delayMs} ms: achieved ${cell.achieved.toFixed(0)}/s, lag p50 ${cell.p50.toFixed(1)} ms p99 ${cell.p99.toFixed(1)} ms`)
        cells.push(cell)
      }
    }
    const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : '-')
    console.log(`\n## Cross-region lag (east -> west)\n`)
    console.log(`- Command: \`npx node bench/regions.ts --seconds ${SECONDS} --shards ${EAST_SHARDS},${WEST_SHARDS} --hello-ms ${HELLO_MS}\`; code: ${codeVersion()}; load average ${loadAverage()}`)
    console.log(`- east: ${regions.east.pairs.length} shard pairs, west: ${regions.west.pairs.length}; load: SET of ${VALUE_BYTES}-byte values over ${WRITER_KEYSPACE} keys to east's router RESP port; probe every ${PROBE_MS} ms, polled in west every ${POLL_MS} ms\n`)
    console.log(formatTable(
      ['rate w/s', 'added delay ms', 'achieved w/s', 'write errors', 'probes', 'timeouts', 'lag p50 ms', 'lag p99 ms', 'lag max ms', 'target p99 ms', 'met?', 'east write p99 ms', 'after ack p50 ms', 'after ack p99 ms', 'east replica lag p50 ms', 'east replica lag p99 ms'],
      cells.map((cell) => [cell.rate, cell.delayMs, cell.achieved.toFixed(0), cell.writeErrors, cell.probes, cell.timeouts, ms(cell.p50), ms(cell.p99), ms(cell.max), `<= ${cell.delayMs + TARGET_SLACK_MS}`, cell.p99 <= cell.delayMs + TARGET_SLACK_MS ? 'yes' : 'no', ms(cell.writeP99), ms(cell.afterAckP50), ms(cell.afterAckP99), ms(cell.replicaP50), ms(cell.replicaP99)]),
    ))
  } finally {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  }
}

runMain(main)
