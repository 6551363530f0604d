// Child process for bench/router-profile.ts: the floor under the router's HTTP cost, a server that
// answers every GET with a fixed 100-byte value's JSON and does nothing else, on bare node:http or
// on fastify (with a /:key route, as the router's front). Prints "listening on <port>".
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { HOST } from '../lib.ts'
import { valueFor } from './keys.ts'

const body = Buffer.from(JSON.stringify({ value: valueFor(0) }))
let server: http.Server
if (process.argv[2] === 'node') {
  server = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length })
    response.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
} else {
  const app = Fastify()
  app.get('/:key', (_request, reply) => reply.type('application/json').send(body))
  await app.listen({ host: HOST, port: 0 })
  server = app.server
}
console.log(`listening on ${(server.address() as AddressInfo).port}`)
