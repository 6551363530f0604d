// How each Op is spoken to a shard in RESP (SL.GETV, SL.SETV, SL.DELV) and how its reply is read
// back into an OpResult; an unexpected reply is a ShardErrorReply, -LOADING a reason to fail over.
import { RespErrorReply, type RespReply } from '../common/resp-reply-parser.ts'
import { HttpError } from '../common/http-errors.ts'
import { ShardConnectionError, ShardErrorReply } from './errors.ts'
import type { Op, OpResult } from './routes/route.ts'
import type { ShardDestination } from './shard-destination.ts'

export async function runOnDestination(destination: ShardDestination, op: Op): Promise<OpResult> {
  switch (op.kind) {
    case 'get': {
      const reply = check(destination, await destination.send(['SL.GETV', op.key]))
      if (reply === null) return { kind: 'get', found: false }
      if (!Array.isArray(reply) || !Buffer.isBuffer(reply[0])) throw unexpected(destination, reply)
      return { kind: 'get', found: true, value: reply[0], version: Number(reply[1]), flags: Number(reply[2]), ttlMs: Number(reply[3]) }
    }
    case 'set': {
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
      const raw = await destination.send(['INCRBY', op.key, String(op.by)])
      if (raw instanceof RespErrorReply && /not an integer|overflow/.test(raw.message)) {
        throw new HttpError(409, 'not_a_counter', `the value under this key is not a counter (${raw.message.replace(/^ERR /, '')})`)
      }
      const reply = check(destination, raw)
      if (typeof reply !== 'number') throw unexpected(destination, reply)
      return { kind: 'incr', value: reply }
    }
    case 'counter': {
      const reply = check(destination, await destination.send(['GET', op.key]))
      if (reply !== null && !Buffer.isBuffer(reply)) throw unexpected(destination, reply)
      const value = reply === null ? 0 : Number(reply.toString('latin1'))
      if (!Number.isSafeInteger(value)) throw new ShardErrorReply(destination.name, `${JSON.stringify(reply?.toString('latin1'))} is not a counter`)
      return { kind: 'counter', value }
    }
  }
}

function check(destination: ShardDestination, reply: RespReply): RespReply {
  if (reply instanceof RespErrorReply) {
    if (reply.message.startsWith('LOADING')) {
      // A restarted primary still loading its replica's data: knock it out until it is ready,
      // and let the failover route take this op to the replica.
      const error = new ShardConnectionError(`${destination.name}: ${reply.message}`)
      destination.onHardFailure(error)
      throw error
    }
    throw new ShardErrorReply(destination.name, reply.message)
  }
  return reply
}

function unexpected(destination: ShardDestination, reply: RespReply): ShardErrorReply {
  return new ShardErrorReply(destination.name, `unexpected reply ${JSON.stringify(reply)}`)
}
