// Certificate rotation on a running router: its certificate and key files are replaced under a
// steady load of HTTPS requests on keep-alive connections; no request fails, the open connections
// keep serving, and new handshakes get the new certificate.
import t from 'tap'
import { once } from 'node:events'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import tls, { type TLSSocket } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { makeTestTls } from '../helpers/certificates.ts'
import { startRouterProcess, startShardProcess, waitFor } from '../helpers/processes.ts'

const files = await makeTestTls(t)
const shard = await startShardProcess(t, ['--name', 's0'])
const router = await startRouterProcess(t, files.write('router.yaml', `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
tls: { cert: ${files.certFile}, key: ${files.keyFile} }
pools:
  main:
    shards:
      - name: s0
        primary: 127.0.0.1:${shard.port}
`))
const { port } = new URL(router.url)

// No session resumption: a resumed connection does not show the certificate it was opened with.
const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: files.ca.cert, maxCachedSessions: 0 })
t.teardown(() => agent.destroy())

interface Answer {
  status: number
  socket: TLSSocket
}

function send(method: 'GET' | 'POST', path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = https.request({ host: '127.0.0.1', port, method, path, agent, headers: body ? { 'content-type': 'application/json' } : {} }, (response) => {
      // Taken now: once the response ends, the socket goes back to the agent.
      const socket = response.socket as TLSSocket
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode!, socket }))
      response.on('error', reject)
    })
    request.on('error', reject)
    request.end(body)
  })
}

/** The fingerprint of the certificate a fresh handshake gets. */
async function servedFingerprint(): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port: Number(port), ca: files.ca.cert })
  await once(socket, 'secureConnect')
  const fingerprint = socket.getPeerCertificate().fingerprint256
  socket.destroy()
  return fingerprint
}

// Written beside the file, then renamed over it: a reader never sees half a PEM file.
function replace(file: string, text: string): void {
  writeFileSync(`${file}.next`, text)
  renameSync(`${file}.next`, file)
}

t.test('replacing the certificate files under load: no request fails, new handshakes get the new certificate', async (t) => {
  t.equal((await send('POST', '/rotating', '{"value":1}')).status, 200)
  const oldFingerprint = new X509Certificate(readFileSync(files.certFile)).fingerprint256
  t.equal(await servedFingerprint(), oldFingerprint, 'the first certificate serves')

  let stop = false
  let rotatedAt = Infinity
  const failures: string[] = []
  const sockets = new Map<TLSSocket, { openedBeforeRotation: boolean; fingerprint: string; requestsAfterRotation: number }>()
  let requests = 0
  const load = async () => {
    while (!stop) {
      try {
        const { status, socket } = await send('GET', '/rotating')
        requests++
        if (status !== 200) failures.push(`status ${status}`)
        let seen = sockets.get(socket)
        if (!seen) {
          seen = { openedBeforeRotation: Date.now() < rotatedAt, fingerprint: socket.getPeerCertificate().fingerprint256, requestsAfterRotation: 0 }
          sockets.set(socket, seen)
        }
        if (Date.now() > rotatedAt) seen.requestsAfterRotation++
      } catch (error) {
        failures.push((error as Error).message)
      }
    }
  }
  const loops = Array.from({ length: 4 }, load)
  await waitFor(() => requests >= 100, 10_000, () => `only ${requests} requests before the rotation`)

  const rotated = await files.issue('rotated')
  const newFingerprint = new X509Certificate(rotated.cert).fingerprint256
  t.not(newFingerprint, oldFingerprint)
  rotatedAt = Date.now()
  // One file at a time, as a renewal does: until both match, the old pair keeps serving.
  replace(files.certFile, rotated.cert)
  replace(files.keyFile, rotated.key)
  await waitFor(async () => (await servedFingerprint()) === newFingerprint, 5000, () => 'new handshakes still get the old certificate')
  const afterReload = requests
  await waitFor(() => requests >= afterReload + 100, 10_000, () => `only ${requests - afterReload} requests after the reload`)
  stop = true
  await Promise.all(loops)

  t.same(failures, [], `no request failed (${requests} requests)`)
  const kept = [...sockets.values()].filter((socket) => socket.openedBeforeRotation && socket.requestsAfterRotation > 0)
  t.ok(kept.length > 0, 'connections opened before the rotation kept serving after it')
  t.ok(kept.every((socket) => socket.fingerprint === oldFingerprint), 'on the certificate they were opened with')
  t.match(router.output(), /TLS certificate reloaded/)
})
