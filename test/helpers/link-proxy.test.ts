// The link proxy the region tests partition with: it carries bytes both ways, delays them in order,
// holds them in a black hole until the heal, and a cut resets every connection and refuses new ones.
import t from 'tap'
import { once } from 'node:events'
import net from 'node:net'
import { LinkProxy } from './link-proxy.ts'
import { waitFor } from './processes.ts'

// The proxy resets the echo server's side too on a cut.
const echo = net.createServer((socket) => socket.on('error', () => {}).pipe(socket))
echo.listen(0, '127.0.0.1')
await once(echo, 'listening')
t.teardown(() => echo.close())
const proxy = await LinkProxy.start('test', { host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port })
t.teardown(() => proxy.close())

/** A connection through the proxy that collects what comes back. */
async function connect(): Promise<{ socket: net.Socket; received: () => string; error: () => string | null }> {
  const socket = net.connect(proxy.port, '127.0.0.1')
  let received = ''
  let error: string | null = null
  socket.on('data', (chunk) => (received += chunk))
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message))
  socket.on('close', () => (error ??= 'closed'))
  await once(socket, 'connect')
  t.teardown(() => socket.destroy())
  return { socket, received: () => received, error: () => error }
}

t.test('carries bytes both ways and counts them', async (t) => {
  const link = await connect()
  link.socket.write('hello')
  await waitFor(() => link.received() === 'hello', 2000)
  t.same(proxy.bytes, { forward: 5, backward: 5 })
})

t.test('a delay holds each chunk that long each way, and keeps the order', async (t) => {
  const link = await connect()
  proxy.delayMs = 100
  const sentAt = performance.now()
  for (const part of ['a', 'b', 'c']) link.socket.write(part)
  await waitFor(() => link.received() === 'abc', 2000)
  proxy.delayMs = 0
  t.ok(performance.now() - sentAt >= 195, `round trip took ${(performance.now() - sentAt).toFixed(0)} ms, 100 ms each way`)
})

t.test('a black hole carries nothing until the heal, then everything it held, in order', async (t) => {
  const link = await connect()
  proxy.blackhole()
  link.socket.write('held-')
  const late = await connect()
  late.socket.write('late')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(link.received() + late.received(), '', 'nothing came back while black-holed')
  t.equal(link.error(), null, 'the connection stays open')
  link.socket.write('more')
  proxy.heal()
  await waitFor(() => link.received() === 'held-more' && late.received() === 'late', 2000)
  t.pass('both connections got their bytes after the heal')
})

t.test('a cut resets every connection and refuses new ones until the heal', async (t) => {
  const link = await connect()
  proxy.cut()
  await waitFor(() => link.error() !== null, 2000)
  t.equal(proxy.open, 0, 'no connection left')
  const refused = net.connect(proxy.port, '127.0.0.1')
  const [error] = await Promise.race([once(refused, 'error'), once(refused, 'close').then(() => [new Error('closed')])]) as [Error]
  t.ok(error, `a new connection fails: ${error.message}`)
  proxy.heal()
  const after = await connect()
  after.socket.write('back')
  await waitFor(() => after.received() === 'back', 2000)
  t.pass('connections work again after the heal')
})
