// How each Op is spoken to a shard in RESP (SL.GETV, SL.SETV, SL.DELV, SET, PEXPIRE, PTTL, …) and how its reply is read
// back into an OpResult (a raw op's command and reply go as they are); an unexpected reply is a
// ShardErrorReply, -LOADING a reason to fail over.
import { inspect } from 'node:util'
import { INT64_MAX, INT64_MIN } from '../common/limits.ts'
import { RespErrorReply, type RespReply } from '../common/resp-reply-parser.ts'
import { CounterOverflowError, NotACounterError, ShardConnectionError, ShardErrorReply } from './errors.ts'
import type { Op, OpResult, RawOp, RawResult } from './routes/route.ts'
import type { ShardDestination } from './shard-destination.ts'

export async function runOnDestination(destination: ShardDestination, op: Op): Promise<OpResult> {
  switch (op.kind) {
    case 'get': {
      const reply = check(destination, await destination.send(['SL.GETV', op.key]))
      if (reply === null) return { kind: 'get', found: false }
      if (!Array.isArray(reply) || !Buffer.isBuffer(reply[0])) throw unexpected(destination, reply)
      const found: Extract<OpResult, { kind: 'get'; found: true }> = { kind: 'get', found: true, value: reply[0], version: Number(reply[1]), flags: Number(reply[2]), ttlMs: Number(reply[3]) }
      if (reply.length > 4) found.counter = true
      return found
    }
    case 'set': {
      if (op.condition !== undefined || op.keepTtl) return runPlainSet(destination, op)
      const args = ['SL.SETV', op.key, op.value, String(op.version), 'FLAGS', String(op.flags)]
      if (op.ttlMs !== undefined) args.push('PX', String(op.ttlMs))
      const reply = check(destination, await destination.send(args))
      // :0 means the shard holds a newer version: the write lost to a later one, which is success.
      return { kind: 'set', stored: reply === 1 }
    }
    case 'delete': {
      // Versioned, so that the shard keeps a tombstone and no older write can bring the key back.
      const reply = check(destination, await destination.send(['SL.DELV', op.key, String(op.version)]))
      return { kind: 'delete', deleted: reply === 1 }
    }
    case 'incr': {
      const raw = await destination.send(['INCRBY', op.key, op.by.toString()])
      if (raw instanceof RespErrorReply) {
        if (raw.message.includes('would overflow')) throw new CounterOverflowError()
        if (raw.message.includes('not an integer')) throw new NotACounterError(raw.message.replace(/^ERR /, ''))
      }
      const reply = check(destination, raw)
      if (typeof reply === 'number') return { kind: 'incr', value: BigInt(reply) }
      if (typeof reply === 'bigint') return { kind: 'incr', value: reply }
      throw unexpected(destination, reply)
    }
    case 'counter': {
      const reply = check(destination, await destination.send(['GET', op.key]))
      if (reply === null) return { kind: 'counter', value: 0n }
      if (!Buffer.isBuffer(reply)) throw unexpected(destination, reply)
      return { kind: 'counter', value: counterValue(reply.toString('latin1')) }
    }
    case 'expire': {
      const reply = check(destination, await destination.send(['PEXPIRE', op.key, String(op.ttlMs)]))
      if (typeof reply !== 'number') throw unexpected(destination, reply)
      return { kind: 'expire', applied: reply === 1 }
    }
    case 'ttl': {
      const reply = check(destination, await destination.send(['PTTL', op.key]))
      if (typeof reply !== 'number') throw unexpected(destination, reply)
      return { kind: 'ttl', ttlMs: reply }
    }
  }
}

/** A raw op's command as it is; its reply as it is, but LOADING (thrown as a ShardConnectionError, to fail over). */
export async function runRawOnDestination(destination: ShardDestination, op: RawOp): Promise<RawResult> {
  const reply = await destination.send(op.command)
  return { kind: 'raw', reply: reply instanceof RespErrorReply ? failOverIfLoading(destination, reply) : reply }
}

// SET key value [NX|XX] [PX ms|KEEPTTL]: the shard checks the condition and stores in one step;
// +OK when stored, a null reply when the condition did not hold.
async function runPlainSet(destination: ShardDestination, op: Extract<Op, { kind: 'set' }>): Promise<OpResult> {
  const args: Array<string | Buffer> = ['SET', op.key, op.value]
  if (op.condition !== undefined) args.push(op.condition.toUpperCase())
  if (op.ttlMs !== undefined) args.push('PX', String(op.ttlMs))
  else if (op.keepTtl) args.push('KEEPTTL')
  const reply = check(destination, await destination.send(args))
  if (reply !== null && reply !== 'OK') throw unexpected(destination, reply)
  return { kind: 'set', stored: reply === 'OK' }
}

const CANONICAL_INTEGER = /^(?:0|-?[1-9][0-9]{0,18})$/

/** A stored counter as INCR reads it: canonical signed 64-bit decimal text, as Redis's string2ll. */
function counterValue(text: string): bigint {
  const value = CANONICAL_INTEGER.test(text) ? BigInt(text) : null
  if (value === null || value < INT64_MIN || value > INT64_MAX) throw new NotACounterError(`${JSON.stringify(text.slice(0, 40))} is not a signed 64-bit integer`)
  return value
}

function check(destination: ShardDestination, reply: RespReply): RespReply {
  if (reply instanceof RespErrorReply) throw new ShardErrorReply(destination.name, failOverIfLoading(destination, reply).message)
  return reply
}

/** An error reply as it is, unless it is LOADING: then a ShardConnectionError is thrown. */
function failOverIfLoading(destination: ShardDestination, reply: RespErrorReply): RespErrorReply {
  if (reply.message.startsWith('LOADING')) {
    // A restarted primary still loading its replica's data: knock it out until it is ready,
    // and let the failover route take this op to the replica.
    const error = new ShardConnectionError(`${destination.name}: ${reply.message}`)
    destination.onHardFailure(error)
    throw error
  }
  return reply
}

function unexpected(destination: ShardDestination, reply: RespReply): ShardErrorReply {
  // inspect, not JSON: a reply may hold bigints, and a large one is cut short.
  return new ShardErrorReply(destination.name, `unexpected reply ${inspect(reply, { breakLength: Infinity, maxArrayLength: 8, maxStringLength: 80 })}`)
}
