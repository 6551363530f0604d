// What the HTTP-mode client tests run against: a real router over real shards (or over a shard that never
// answers), the router's request counts by op from /metrics, and a scripted stand-in router that counts requests.
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRouterProcess, startShardProcess, type RouterProcess, type ShardProcess, type Teardown } from './processes.ts'

export interface RouterOverShards {
  router: RouterProcess
  shards: ShardProcess[]
}

/** A router over `count` single shards; `yaml` is appended to its config (health, connections, limits). */
export async function startRouterOverShards(t: Teardown, count: number, yaml = ''): Promise<RouterOverShards> {
  const shards = await Promise.all(Array.from({ length: count }, (_, i) => startShardProcess(t, ['--name', `s${i}`])))
  const router = await startRouterOverPorts(t, shards.map((shard) => shard.port), yaml)
  return { router, shards }
}

/** A router whose shards are at these loopback ports, whatever listens there. */
export async function startRouterOverPorts(t: Teardown, ports: number[], yaml = ''): Promise<RouterProcess> {
  const file = join(mkdtempSync(join(tmpdir(), 'shardline-client-')), 'router.yaml')
  writeFileSync(file, `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
pools:
  main:
    shards:
${ports.map((port, i) => `      - name: s${i}
        primary: 127.0.0.1:${port}`).join('\n')}
${yaml}`)
  return startRouterProcess(t, file)
}

/** The router's data-port requests so far by op (get, set, delete, batch, incr, counter), over every status. */
export async function requestsByOp(router: RouterProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`${router.adminUrl}/metrics`)).text()
  const counts: Record<string, number> = {}
  for (const [, op, count] of text.matchAll(/^shardline_router_requests_total\{op="(\w+)",code="\d+"\} (\d+)$/gm)) counts[op] = (counts[op] ?? 0) + Number(count)
  return counts
}

/** A loopback TCP server that accepts connections and never answers: a hung shard. */
export async function silentServer(t: Teardown): Promise<number> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return (server.address() as net.AddressInfo).port
}

export interface ScriptedRequest {
  method: string
  url: string
  body: string
}

/**
 * A stand-in router on a loopback port: each request is recorded, then answered by `answer`, which
 * writes a response, destroys the connection, or leaves the request hanging.
 */
export async function scriptedRouter(t: Teardown, answer: (request: ScriptedRequest, response: http.ServerResponse, index: number) => void): Promise<{ url: string; requests: ScriptedRequest[] }> {
  const requests: ScriptedRequest[] = []
  const server = http.createServer(async (incoming, response) => {
    let body = ''
    for await (const chunk of incoming) body += chunk
    const request = { method: incoming.method!, url: incoming.url!, body }
    requests.push(request)
    answer(request, response, requests.length - 1)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, requests }
}

/** Answers a JSON body. */
export function sendJson(response: http.ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(typeof body === 'string' ? body : JSON.stringify(body))
}
