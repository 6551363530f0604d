// Certificates made for a test: a CA and a loopback certificate it signs, written as PEM files into a
// temporary directory the test removes; more certificates (expired, other CAs) on demand.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCertificateAuthority, issueCertificate, type CertificateAuthority, type IssueOptions, type IssuedCertificate } from '../../cli/local-tls.ts'
import type { Teardown } from './processes.ts'

export interface TestTls {
  dir: string
  ca: CertificateAuthority
  /** The CA's certificate: what clients trust. */
  caFile: string
  /** The server certificate and its key (for 127.0.0.1, ::1 and localhost). */
  certFile: string
  keyFile: string
  /** Writes text as dir/name and returns its path. */
  write(name: string, text: string): string
  /** Another certificate of this CA, written as <name>.pem and <name>-key.pem. */
  issue(name: string, options?: IssueOptions): Promise<IssuedCertificate & { certFile: string; keyFile: string }>
}

export async function makeTestTls(t: Teardown): Promise<TestTls> {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ca = await createCertificateAuthority('shardline test CA')
  const write = (name: string, text: string) => {
    const file = join(dir, name)
    writeFileSync(file, text)
    return file
  }
  const issue = async (name: string, options?: IssueOptions) => {
    const issued = await issueCertificate(ca, options)
    return { ...issued, certFile: write(`${name}.pem`, issued.cert), keyFile: write(`${name}-key.pem`, issued.key) }
  }
  const server = await issue('server')
  return { dir, ca, caFile: write('ca.pem', ca.cert), certFile: server.certFile, keyFile: server.keyFile, write, issue }
}
