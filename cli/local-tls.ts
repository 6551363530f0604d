// Throwaway certificates for the local secure cluster and for tests: a CA, and certificates it signs
// for loopback names (EC P-256, made with the selfsigned library, so no openssl is needed).
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generate } from 'selfsigned'

export interface CertificateAuthority {
  cert: string
  key: string
}

export interface IssuedCertificate {
  cert: string
  key: string
}

export interface IssueOptions {
  /** DNS names and IP addresses the certificate is for (its subjectAltName); the first is its common name. */
  hosts?: string[]
  notBefore?: Date
  notAfter?: Date
}

const DAY_MS = 86_400_000
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1']
const IP = /^(\d+\.\d+\.\d+\.\d+|[0-9a-f:]+:[0-9a-f:]*)$/i

export async function createCertificateAuthority(name = 'shardline local CA', days = 3650): Promise<CertificateAuthority> {
  const notBeforeDate = new Date(Date.now() - 60_000)
  const made = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + days * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  })
  return { cert: made.cert, key: made.private }
}

/** A certificate the CA signs, for servers and clients alike (serverAuth and clientAuth). */
export async function issueCertificate(ca: CertificateAuthority, options: IssueOptions = {}): Promise<IssuedCertificate> {
  const hosts = options.hosts ?? LOOPBACK_NAMES
  const notBeforeDate = options.notBefore ?? new Date(Date.now() - 60_000)
  const made = await generate([{ name: 'commonName', value: hosts[0] }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: options.notAfter ?? new Date(notBeforeDate.getTime() + 825 * DAY_MS),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames: hosts.map((host) => (IP.test(host) ? { type: 7 as const, ip: host } : { type: 2 as const, value: host })) },
    ],
  })
  return { cert: made.cert, key: made.private }
}

/** The files a local secure cluster uses, under one directory. */
export interface LocalTlsFiles {
  /** The CA's certificate: what clients trust (curl --cacert, redis-cli --cacert). */
  ca: string
  cert: string
  key: string
}

/**
 * Makes a CA and one loopback certificate in dir on first use (keys readable by the owner only),
 * and reuses them afterwards, so a client that trusts ca.pem keeps trusting the cluster.
 */
export async function ensureLocalTls(dir: string): Promise<LocalTlsFiles> {
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server-key.pem') }
  if (Object.values(files).every((file) => existsSync(file))) return files
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const caKeyFile = join(dir, 'ca-key.pem')
  const ca = existsSync(files.ca) && existsSync(caKeyFile)
    ? { cert: readFileSync(files.ca, 'utf8'), key: readFileSync(caKeyFile, 'utf8') }
    : await createCertificateAuthority()
  const issued = await issueCertificate(ca)
  writeSecretFile(caKeyFile, ca.key)
  writeFileSync(files.ca, ca.cert)
  writeFileSync(files.cert, issued.cert)
  writeSecretFile(files.key, issued.key)
  return files
}

function writeSecretFile(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 })
  chmodSync(file, 0o600)
}
