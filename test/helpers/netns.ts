// Test hosts for network-partition tests of real processes: one Linux network namespace per host,
// routed through the root namespace, cut and healed pair by pair with blackhole routing. Root only.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs'
import { isAlive } from './processes.ts'

export interface TestHost {
  name: string
  /** The namespace's name, for `ip netns exec` / `ip -n`. */
  netns: string
  /** Where the root namespace and the other hosts reach this host. */
  address: string
  /** Where this host reaches the root namespace (the root side of its veth pair). */
  rootAddress: string
}

export interface TestNetwork {
  hosts: Record<string, TestHost>
  /** Like child_process.spawn, inside the host's namespace; the child's pid is the command's own. */
  exec(host: string, command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess
  /** Drops all traffic between a and b, both ways; either may be 'root' (the root namespace). */
  partition(a: string, b: string): Promise<void>
  /** Undoes partition(a, b); a no-op if the pair is not cut. */
  heal(a: string, b: string): Promise<void>
  /** Kills what runs in the namespaces and removes everything created; safe to call twice. */
  destroy(): Promise<void>
}

export const ROOT = 'root'

// 10.231.0.0/16 cut into /30 slots: slot k is 10.231.0.0 + 4k, root side .1, host side .2. The
// root-side veth is named after the slot (slv<k>a), so creating it is the lock on the slot: two test
// files (two processes) racing for one slot get "File exists" on one side, which moves on.
const SLOTS = 16384
const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/i
const OUR_NETNS = /^sl(\d+)-\d+-/

let slotCursor = (process.pid * 64) % SLOTS
let networkCount = 0
const live = new Set<Network>()
const ownNamespaces = new Set<string>()

let unavailable: string | null | undefined
export function netnsUnavailableReason(): string | null {
  if (unavailable !== undefined) return unavailable
  unavailable = probe()
  return unavailable
}

function probe(): string | null {
  if (process.platform !== 'linux') return `needs Linux network namespaces; running on ${process.platform}`
  const uid = process.getuid?.()
  if (uid !== 0) return `needs root to create network namespaces (ip netns); running as uid ${uid}`
  const version = spawnSync('ip', ['-V'], { encoding: 'utf8' })
  if (version.error) return `needs the ip command (iproute2) to create network namespaces: ${version.error.message}`
  try {
    accessSync('/proc/sys/net/ipv4/ip_forward', constants.W_OK)
  } catch (error) {
    return `needs a writable /proc/sys/net/ipv4/ip_forward to route between namespaces: ${(error as Error).message}`
  }
  // Root is not enough inside most containers (no CAP_SYS_ADMIN, or no veth): try the real thing.
  const netns = `sl${process.pid}-0-probe`
  const veth = `slp${process.pid}`
  try {
    ip(['netns', 'add', netns])
    ownNamespaces.add(netns)
    ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns])
    return null
  } catch (error) {
    return `cannot create network namespaces with a veth pair: ${(error as Error).message}`
  } finally {
    ipQuiet(['link', 'del', veth])
    ipQuiet(['netns', 'del', netns])
    ownNamespaces.delete(netns)
  }
}

export async function createTestHosts(names: string[]): Promise<TestNetwork> {
  const reason = netnsUnavailableReason()
  if (reason) throw new Error(reason)
  if (names.length === 0) throw new Error('createTestHosts needs at least one host name')
  for (const name of names) {
    if (!NAME.test(name)) throw new Error(`bad test host name ${JSON.stringify(name)}: letters, digits, - and _, up to 32`)
    if (name === ROOT) throw new Error(`"${ROOT}" names the root namespace; pick another host name`)
  }
  if (new Set(names).size !== names.length) throw new Error(`duplicate test host names: ${names.join(', ')}`)
  reapStale()
  // Forwarding is what lets host reach host through the root namespace. Left on at destroy: other
  // test files may be using it at that moment, and it is a host-global switch.
  if (readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== '1') writeFileSync('/proc/sys/net/ipv4/ip_forward', '1')
  const network = new Network(`sl${process.pid}-${++networkCount}-`)
  try {
    network.build(names)
  } catch (error) {
    network.destroySync()
    throw error
  }
  return network
}

class Network implements TestNetwork {
  hosts: Record<string, TestHost> = {}
  #prefix: string
  #namespaces: string[] = []
  #veths: string[] = []
  #cuts = new Map<string, { a: string; b: string }>()
  #destroyed = false

  constructor(prefix: string) {
    this.#prefix = prefix
    live.add(this)
    installExitHooks()
  }

  build(names: string[]): void {
    const taken = rootAddresses()
    for (const name of names) {
      const netns = this.#prefix + name
      ip(['netns', 'add', netns])
      ownNamespaces.add(netns)
      this.#namespaces.push(netns)
      const slot = claimSlot(netns, taken)
      const { rootAddress, address } = slotAddresses(slot)
      this.#veths.push(`slv${slot}a`)
      removeRulesFor(address)
      ip(['addr', 'add', `${rootAddress}/30`, 'dev', `slv${slot}a`])
      ip(['link', 'set', `slv${slot}a`, 'up'])
      ip(['-n', netns, 'link', 'set', 'lo', 'up'])
      ip(['-n', netns, 'addr', 'add', `${address}/30`, 'dev', `slv${slot}b`])
      ip(['-n', netns, 'link', 'set', `slv${slot}b`, 'up'])
      // Strict reverse-path filtering makes a blackhole route to the root side drop what arrives
      // from it too, so a cut root namespace hears nothing back and sees silence, not errors.
      ip(['netns', 'exec', netns, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter'])
      this.hosts[name] = { name, netns, address, rootAddress }
    }
    // Routes only to this network's hosts, no default route: nothing leaves for outside addresses or
    // for another test file's hosts, and the root namespace is reachable only at rootAddress.
    for (const host of Object.values(this.hosts)) {
      for (const other of Object.values(this.hosts)) {
        if (other !== host) ip(['-n', host.netns, 'route', 'add', `${other.address}/32`, 'via', host.rootAddress])
      }
    }
  }

  exec(hostName: string, command: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    const host = this.#host(hostName)
    // ip netns exec enters the namespace and then execs the command (no fork), so the child's pid
    // is the command's own and killing the child kills it.
    return spawn('ip', ['netns', 'exec', host.netns, command, ...args], options)
  }

  // Blackhole routing needs no netfilter (iptables is not installed), drops packets without an ICMP
  // answer, and cuts one pair while every other path stays up. Where the drop happens matters: a
  // sender whose own route is a blackhole gets EINVAL at once, which no real partition does. So a
  // host-to-host cut is a pair of blackhole rules in the root namespace, which forwards between
  // hosts: both sides send, nothing arrives, connects time out. A root-to-host cut is a blackhole
  // route in the host's namespace for its rootAddress (rp_filter drops what arrives from there as
  // well): the root namespace's connects and writes go unanswered. Only a host dialling the root
  // namespace while cut fails fast (EINVAL), the one place this is not a real partition.
  async partition(a: string, b: string): Promise<void> {
    const [key, from, to] = this.#pair(a, b)
    if (this.#cuts.has(key)) return
    if (from === ROOT) ip(['-n', this.hosts[to].netns, 'route', 'add', 'blackhole', `${this.hosts[to].rootAddress}/32`])
    else {
      const [x, y] = [this.hosts[from].address, this.hosts[to].address]
      ip(['rule', 'add', 'from', x, 'to', y, 'blackhole'])
      try {
        ip(['rule', 'add', 'from', y, 'to', x, 'blackhole'])
      } catch (error) {
        ipQuiet(['rule', 'del', 'from', x, 'to', y, 'blackhole'])
        throw error
      }
    }
    this.#cuts.set(key, { a: from, b: to })
  }

  async heal(a: string, b: string): Promise<void> {
    const [key] = this.#pair(a, b)
    const cut = this.#cuts.get(key)
    if (!cut) return
    this.#uncut(cut.a, cut.b)
    this.#cuts.delete(key)
  }

  async destroy(): Promise<void> {
    this.destroySync()
  }

  /** Synchronous so it can run from process 'exit'. Best effort: keeps going, then throws the first failure. */
  destroySync(): void {
    if (this.#destroyed) return
    this.#destroyed = true
    live.delete(this)
    if (live.size === 0) removeSignalHooks()
    const failures: string[] = []
    const attempt = (fn: () => void) => {
      try {
        fn()
      } catch (error) {
        failures.push((error as Error).message)
      }
    }
    // Rules live in the root namespace and outlast the namespaces; routes inside go with them.
    for (const { a, b } of this.#cuts.values()) if (a !== ROOT) attempt(() => this.#uncut(a, b))
    this.#cuts.clear()
    for (const netns of this.#namespaces) {
      attempt(() => killAllIn(netns))
    }
    for (const veth of this.#veths) attempt(() => ipGone(['link', 'del', veth]))
    for (const netns of this.#namespaces) {
      attempt(() => ipGone(['netns', 'del', netns]))
      ownNamespaces.delete(netns)
    }
    if (failures.length > 0) throw new Error(`destroying test hosts ${this.#prefix}*: ${failures.join('; ')}`)
  }

  #uncut(a: string, b: string): void {
    if (a === ROOT) {
      ip(['-n', this.hosts[b].netns, 'route', 'del', 'blackhole', `${this.hosts[b].rootAddress}/32`])
      return
    }
    const [x, y] = [this.hosts[a].address, this.hosts[b].address]
    ip(['rule', 'del', 'from', x, 'to', y, 'blackhole'])
    ip(['rule', 'del', 'from', y, 'to', x, 'blackhole'])
  }

  #host(name: string): TestHost {
    if (this.#destroyed) throw new Error(`test hosts ${this.#prefix}* are destroyed`)
    const host = this.hosts[name]
    if (!host) throw new Error(`no test host ${JSON.stringify(name)} (hosts: ${Object.keys(this.hosts).join(', ')})`)
    return host
  }

  /** Checks the pair; 'root' always comes first, so each pair has one key and one way to undo it. */
  #pair(a: string, b: string): [string, string, string] {
    if (a === b) throw new Error(`cannot partition ${JSON.stringify(a)} from itself`)
    for (const name of [a, b]) if (name !== ROOT) this.#host(name)
    const [from, to] = b === ROOT || (a !== ROOT && b < a) ? [b, a] : [a, b]
    return [`${from}\0${to}`, from, to]
  }
}

function slotAddresses(slot: number): { rootAddress: string; address: string } {
  const base = slot * 4
  const prefix = `10.231.${base >> 8}.`
  return { rootAddress: prefix + ((base & 255) + 1), address: prefix + ((base & 255) + 2) }
}

/** Creates the veth pair for a new host on the first free slot; the root side's name is the lock. */
function claimSlot(netns: string, taken: Set<string>): number {
  for (let tries = 0; tries < SLOTS; tries++) {
    const slot = slotCursor
    slotCursor = (slotCursor + 1) % SLOTS
    const { rootAddress, address } = slotAddresses(slot)
    if (taken.has(rootAddress) || taken.has(address)) continue
    const result = ipRun(['link', 'add', `slv${slot}a`, 'type', 'veth', 'peer', 'name', `slv${slot}b`, 'netns', netns])
    if (result.status === 0) return slot
    if (!result.stderr.includes('File exists')) throw ipError(result)
  }
  throw new Error(`no free /30 left in 10.231.0.0/16 for test host ${netns}`)
}

/** Addresses already on the root namespace's interfaces, so a slot never clashes with real ones. */
function rootAddresses(): Set<string> {
  const out = ip(['-o', '-4', 'addr', 'show'])
  return new Set([...out.matchAll(/inet (\d+\.\d+\.\d+\.\d+)/g)].map((match) => match[1]))
}

/** Blackhole rules for an address left by a process that died mid-partition would cut its slot's next owner. */
function removeRulesFor(address: string): void {
  for (const match of ip(['-4', 'rule', 'show']).matchAll(/^(\d+):\s+from (\S+) to (\S+) blackhole/gm)) {
    if (match[2] === address || match[3] === address) ipQuiet(['rule', 'del', 'pref', match[1], 'from', match[2], 'to', match[3], 'blackhole'])
  }
}

/** Namespaces of test processes that died without cleaning up (kill -9, a crash) hold their slots forever. */
function reapStale(): void {
  for (const line of ipRun(['netns', 'list']).stdout.split('\n')) {
    const netns = line.split(' ')[0]
    const match = OUR_NETNS.exec(netns)
    if (!match) continue
    const pid = Number(match[1])
    if (pid === process.pid ? ownNamespaces.has(netns) : isAlive(pid)) continue
    try {
      killAllIn(netns)
    } catch {
      // raced with another reaper or with the namespace's own cleanup
    }
    for (const address of ipRun(['-n', netns, '-o', '-4', 'addr', 'show']).stdout.matchAll(/inet (10\.231\.\d+\.\d+)\//g)) removeRulesFor(address[1])
    for (const veth of ipRun(['-n', netns, '-o', 'link', 'show', 'type', 'veth']).stdout.matchAll(/^\d+: (slv\d+b)@/gm)) ipQuiet(['-n', netns, 'link', 'del', veth[1]])
    ipQuiet(['netns', 'del', netns])
  }
}

/** A namespace with a process still in it outlives `ip netns del`; so does its veth. */
function killAllIn(netns: string): void {
  for (const pid of ip(['netns', 'pids', netns]).split('\n').filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
    }
  }
}

interface IpResult {
  args: string[]
  status: number | null
  stdout: string
  stderr: string
}

function ipRun(args: string[]): IpResult {
  const result = spawnSync('ip', args, { encoding: 'utf8' })
  if (result.error) throw new Error(`ip ${args.join(' ')} could not run: ${result.error.message}`)
  return { args, status: result.status, stdout: result.stdout, stderr: result.stderr }
}

function ipError(result: IpResult): Error {
  return new Error(`ip ${result.args.join(' ')} failed (exit ${result.status}): ${result.stderr.trim() || '(no stderr)'}`)
}

function ip(args: string[]): string {
  const result = ipRun(args)
  if (result.status !== 0) throw ipError(result)
  return result.stdout
}

/** For cleanup of what may already be gone. */
function ipQuiet(args: string[]): void {
  try {
    ipRun(args)
  } catch {
    // ip itself missing: nothing was created either
  }
}

/** Deletes something that may already be gone (killed namespace, earlier destroy), but fails on anything else. */
function ipGone(args: string[]): void {
  const result = ipRun(args)
  if (result.status !== 0 && !/Cannot find device|No such file|does not exist/.test(result.stderr)) throw ipError(result)
}

// Teardown hooks are the normal path; these cover a test file that throws past them, exits, or is
// interrupted. tap's own timeout (SIGALRM) ends the process normally, so 'exit' covers it.
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
let exitHooked = false
let signalsHooked = false

function destroyAll(): void {
  for (const network of [...live]) {
    try {
      network.destroySync()
    } catch (error) {
      process.stderr.write(`${(error as Error).message}\n`)
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  destroyAll()
  removeSignalHooks()
  // Our listener suppressed the default action; send it again so the process still dies (tap's
  // signal-exit, if loaded, stood aside the first time because it was not the only listener).
  process.kill(process.pid, signal)
}

function installExitHooks(): void {
  if (!exitHooked) process.on('exit', destroyAll)
  exitHooked = true
  if (!signalsHooked) for (const signal of SIGNALS) process.on(signal, onSignal)
  signalsHooked = true
}

function removeSignalHooks(): void {
  if (signalsHooked) for (const signal of SIGNALS) process.removeListener(signal, onSignal)
  signalsHooked = false
}
