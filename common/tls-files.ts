// TLS from certificate files: a server's certificate, key and (for client certificates) CA, applied
// again to the running server when a file changes, so that a renewed certificate serves new
// handshakes without dropping open connections; and a client's CA, optional certificate, and name.
import type { Server as TlsServer, ConnectionOptions, SecureContextOptions } from 'node:tls'
import { isIPv4, isIPv6 } from 'node:net'
import { ConfigError } from './validate.ts'
import { WatchedFile } from './watched-file.ts'

/** What a server is given: its certificate chain and key, and optionally a CA its clients' certificates must chain to. */
export interface ServerTlsFiles {
  cert: string
  key: string
  /** With it, clients must present a certificate this CA signed. */
  clientCa?: string
  minVersion: 'TLSv1.2' | 'TLSv1.3'
}

/** What a client is given: the CA to verify the server with, optionally its own certificate, and the name to expect. */
export interface ClientTlsFiles {
  ca: string
  cert?: string
  key?: string
  /** The name the server's certificate must carry; defaults to the host connected to. */
  serverName?: string
}

const file = { type: 'string', minLength: 1 } as const

export const serverTlsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['cert', 'key'],
  properties: { cert: file, key: file, clientCa: file, minVersion: { enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2' } },
} as const

export const clientTlsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ca'],
  properties: { ca: file, cert: file, key: file, serverName: { type: 'string', minLength: 1 } },
  // draft-07 (our Ajv's dialect) spells dependentRequired this way.
  dependencies: { cert: ['key'], key: ['cert'] },
} as const

/** Something that wants to hear of reloads and refused files (the process's log). */
export interface TlsEvents {
  reloaded(what: string): void
  refused(what: string, error: Error): void
}

/**
 * A server's TLS settings, kept current from their files. attach() a server (tls or https) and
 * each change to a file is tried and, when the files make a valid context, applied to it.
 */
export class ServerTls {
  private readonly files: ServerTlsFiles
  private readonly watched: WatchedFile[]
  private readonly servers: TlsServer[] = []
  private readonly events: TlsEvents
  private current: SecureContextOptions

  constructor(files: ServerTlsFiles, events: TlsEvents) {
    this.files = files
    this.events = events
    const paths = [files.cert, files.key, ...(files.clientCa ? [files.clientCa] : [])]
    this.watched = []
    try {
      for (const path of paths) this.watched.push(new WatchedFile(path, () => this.reload()))
    } catch (error) {
      this.close()
      throw new ConfigError(`tls: cannot read ${(error as Error & { path?: string }).path ?? 'a certificate file'}: ${(error as Error).message}`)
    }
    this.current = this.read()
  }

  /** Options for tls.createServer / https.createServer. */
  options(): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean; minVersion: ServerTlsFiles['minVersion'] } {
    const withClientCerts = this.files.clientCa !== undefined
    return { ...this.current, requestCert: withClientCerts, rejectUnauthorized: withClientCerts, minVersion: this.files.minVersion }
  }

  attach(server: TlsServer): void {
    this.servers.push(server)
  }

  close(): void {
    for (const watched of this.watched) watched.close()
  }

  private read(): SecureContextOptions {
    const [cert, key, clientCa] = this.watched.map((watched) => watched.current)
    return { cert, key, ...(clientCa ? { ca: clientCa } : {}) }
  }

  // A certificate and its key are usually replaced one file at a time: until both match,
  // setSecureContext refuses the pair and the old one keeps serving.
  private reload(): void {
    const next = this.read()
    try {
      for (const server of this.servers) server.setSecureContext({ ...next, minVersion: this.files.minVersion })
    } catch (error) {
      this.events.refused(this.files.cert, error as Error)
      return
    }
    this.current = next
    this.events.reloaded(this.files.cert)
  }
}

/** A client's TLS settings, read again from their files when they change. */
export class ClientTls {
  private readonly files: ClientTlsFiles
  private readonly watched: WatchedFile[] = []

  constructor(files: ClientTlsFiles) {
    this.files = files
    try {
      for (const path of [files.ca, ...(files.cert ? [files.cert, files.key!] : [])]) this.watched.push(new WatchedFile(path))
    } catch (error) {
      this.close()
      throw new ConfigError(`tls: cannot read a certificate file: ${(error as Error).message}`)
    }
  }

  /** Options for tls.connect to host (verifying the server's certificate against the CA). */
  connectOptions(host: string): ConnectionOptions {
    const [ca, cert, key] = this.watched.map((watched) => watched.current)
    const name = this.files.serverName ?? host
    // SNI carries names only; an IP address is still checked against the certificate's IP entries.
    return { ca, ...(cert ? { cert, key } : {}), ...(isIPv4(name) || isIPv6(name) ? {} : { servername: name }), rejectUnauthorized: true, minVersion: 'TLSv1.2' }
  }

  close(): void {
    for (const watched of this.watched) watched.close()
  }
}
