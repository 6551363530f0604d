// The router's connection settings for its data and admin ports, from the config's limits, with
// the data port's cap lowered when the process's open-file limit could not hold it.
import { readFileSync } from 'node:fs'
import type { ConnectionSettings } from '../common/http-server.ts'
import type { Logger } from '../common/logger.ts'
import type { RouterConfig } from './config.ts'

/** File descriptors kept for everything but client connections: shard connections, logs, the config watch. */
export const FILE_RESERVE = 512

/** The soft limit on open files, from /proc/self/limits where there is one; null if unknown or unlimited. */
export function openFileLimit(procLimits = '/proc/self/limits'): number | null {
  let text: string
  try {
    text = readFileSync(procLimits, 'utf8')
  } catch {
    return null
  }
  const soft = /^Max open files\s+(\d+)/m.exec(text)
  return soft ? Number(soft[1]) : null
}

/**
 * Each port's settings. The admin and RESP ports keep their own caps whatever the data port holds;
 * when all the caps (the RESP port's when it listens) and the reserve exceed the open-file limit,
 * the data port's cap is lowered (warned once, at start: connection settings take effect on restart).
 */
export function connectionSettings(limits: RouterConfig['limits'], fileLimit: number | null, log: Logger, respListens = false): { data: ConnectionSettings; admin: ConnectionSettings } {
  const timeouts = { idleTimeoutMs: limits.idleTimeoutMs, requestTimeoutMs: limits.requestTimeoutMs }
  const otherCaps = limits.maxAdminConnections + (respListens ? limits.maxRespConnections : 0)
  let dataCap = limits.maxConnections
  if (fileLimit !== null && dataCap + otherCaps + FILE_RESERVE > fileLimit) {
    dataCap = Math.max(1, fileLimit - otherCaps - FILE_RESERVE)
    log.warn({ maxConnections: limits.maxConnections, openFileLimit: fileLimit, effective: dataCap }, 'limits.maxConnections does not fit the open-file limit (ulimit -n): the data port holds fewer connections')
  }
  return { data: { max: dataCap, ...timeouts }, admin: { max: limits.maxAdminConnections, ...timeouts } }
}
