// The network-namespace test hosts: reachability through the root namespace, exec running the real
// process, a silent cut between two hosts and between the root namespace and a host, heal, cleanup.
import t from 'tap'
import { spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readlinkSync, realpathSync, statSync } from 'node:fs'
import { connect } from 'node:net'
import { createTestHosts, netnsUnavailableReason } from './netns.ts'
import { waitFor } from './processes.ts'

// An echo server on port 0 that prints where it listens, and a client that prints ok, timeout or
// the error code: enough to tell a partition (silence) from a refusal or an instant local error.
const ECHO_SERVER = `const s = require('node:net').createServer((c) => c.pipe(c))
s.listen(0, process.argv[1], () => console.log(JSON.stringify(s.address())))`
const PROBE = `const [host, port, ms] = process.argv.slice(1)
const c = require('node:net').connect(Number(port), host)
const timer = setTimeout(() => { console.log('timeout'); process.exit(0) }, Number(ms))
c.on('connect', () => c.write('ping'))
c.on('data', (d) => { if (String(d) === 'ping') { console.log('ok'); process.exit(0) } })
c.on('error', (e) => { clearTimeout(timer); console.log('error ' + e.code); process.exit(0) })`
const PROBE_MS = 1000

const unavailable = netnsUnavailableReason()
if (unavailable) {
  t.plan(0, unavailable)
} else {
  const started = Date.now()
  const net = await createTestHosts(['a', 'b'])
  const children: ChildProcess[] = []
  t.teardown(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    return net.destroy()
  })
  t.teardown(() => t.comment(`netns test took ${Date.now() - started} ms`))
  const { a, b } = net.hosts

  const server = net.exec('b', process.execPath, ['-e', ECHO_SERVER, b.address], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(server)
  let serverOutput = ''
  server.stdout!.on('data', (chunk) => (serverOutput += chunk))
  server.stderr!.on('data', (chunk) => (serverOutput += chunk))
  const { port } = JSON.parse(await waitFor(() => serverOutput.split('\n').find((line) => line.startsWith('{')), 10000, () => `echo server in b did not start:\n${serverOutput}`))

  const probeFromRoot = (address: string) =>
    new Promise<string>((resolve) => {
      const socket = connect(port, address)
      const finish = (result: string) => {
        clearTimeout(timer)
        socket.destroy()
        resolve(result)
      }
      const timer = setTimeout(() => finish('timeout'), PROBE_MS)
      socket.on('connect', () => socket.write('ping'))
      socket.on('data', (data) => String(data) === 'ping' && finish('ok'))
      socket.on('error', (error: NodeJS.ErrnoException) => finish(`error ${error.code}`))
    })
  const probeFromHost = async (host: string, address: string) => {
    const probe = net.exec(host, process.execPath, ['-e', PROBE, address, String(port), String(PROBE_MS)], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(probe)
    let output = ''
    probe.stdout!.on('data', (chunk) => (output += chunk))
    await once(probe, 'exit')
    return output.trim()
  }

  t.test('hosts get their own namespaces and addresses', async (t) => {
    t.match(a, { name: 'a', netns: new RegExp(`^sl${process.pid}-\\d+-a$`), address: /^10\.231\.\d+\.\d+$/, rootAddress: /^10\.231\.\d+\.\d+$/ })
    t.not(a.address, b.address)
    const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
    t.match(listed, a.netns)
    t.match(listed, b.netns)
  })

  t.test('exec runs the command itself inside the namespace', async (t) => {
    t.equal(readlinkSync(`/proc/${server.pid}/ns/net`), `net:[${statSync(`/run/netns/${b.netns}`).ino}]`, 'in b')
    t.equal(realpathSync(`/proc/${server.pid}/exe`), realpathSync(process.execPath), 'the pid is node, not ip')
  })

  t.test('the root namespace and the other host reach b', async (t) => {
    t.equal(await probeFromRoot(b.address), 'ok')
    t.equal(await probeFromHost('a', b.address), 'ok')
    t.match(await probeFromHost('a', '192.0.2.1'), /^error E(NETUNREACH|HOSTUNREACH)$/, 'nothing routes outside')
  })

  t.test('a cut between a and b is silence for them and nothing for the root namespace', async (t) => {
    await net.partition('a', 'b')
    await net.partition('b', 'a') // already cut: no-op
    const before = Date.now()
    t.equal(await probeFromHost('a', b.address), 'timeout', 'a hears nothing')
    t.ok(Date.now() - before >= PROBE_MS, 'waited out the deadline')
    t.equal(await probeFromRoot(b.address), 'ok', 'root still reaches b')
    await net.heal('b', 'a')
    t.equal(await probeFromHost('a', b.address), 'ok', 'healed')
    await net.heal('a', 'b') // not cut: no-op
  })

  t.test('a cut between the root namespace and b leaves a reaching b', async (t) => {
    await net.partition('root', 'b')
    t.equal(await probeFromRoot(b.address), 'timeout', 'root hears nothing')
    t.equal(await probeFromHost('a', b.address), 'ok', 'a still reaches b')
    await net.heal('b', 'root')
    t.equal(await probeFromRoot(b.address), 'ok', 'healed')
  })

  t.test('bad pairs are refused', async (t) => {
    await t.rejects(net.partition('a', 'c'), /no test host "c" \(hosts: a, b\)/)
    await t.rejects(net.partition('a', 'a'), /from itself/)
    await t.rejects(net.partition('root', 'root'), /from itself/)
    t.throws(() => net.exec('c', 'true'), /no test host "c"/)
    await t.rejects(createTestHosts(['root']), /root namespace/)
  })

  t.test('killing an exec child kills the process', async (t) => {
    const exited = once(server, 'exit')
    server.kill('SIGKILL')
    t.same(await exited, [null, 'SIGKILL'])
    t.notOk(existsSync(`/proc/${server.pid}`))
  })

  t.test('destroy removes namespaces, veths and cuts, and can run twice', async (t) => {
    await net.partition('a', 'b')
    await net.partition('root', 'a')
    const sleeper = net.exec('a', 'sleep', ['600'])
    children.push(sleeper)
    const sleeperExited = once(sleeper, 'exit')
    await net.destroy()
    await net.destroy()
    t.same(await sleeperExited, [null, 'SIGKILL'], 'what ran inside is killed')
    const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
    t.notMatch(listed, a.netns)
    t.notMatch(listed, b.netns)
    const addresses = spawnSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' }).stdout
    t.notMatch(addresses, `${a.rootAddress}/`, 'root-side veth of a gone')
    t.notMatch(addresses, `${b.rootAddress}/`, 'root-side veth of b gone')
    t.notMatch(spawnSync('ip', ['rule', 'show'], { encoding: 'utf8' }).stdout, a.address, 'blackhole rules gone')
    t.throws(() => net.exec('a', 'true'), /destroyed/)
  })
}
