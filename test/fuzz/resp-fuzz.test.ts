// Fuzzes a real shard over raw RESP: seeded command sequences with keys, values and numbers at the
// edges, pipelines and malformed frames; after every step a well-formed reply, a live process, a model that agrees.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { startShardProcess } from '../helpers/processes.ts'
import { checkAlive, checkAliveAfterLoss, checkRuns, fuzzSettings, labelled, PossibleWorlds, type RunLog } from './fuzz-support.ts'
import {
  ClockBounds, commandArbitrary, commandArgs, commandOp, describeCommand, EMPTY_WORLD, fingerprint, framesOp, MAX_KEY_BYTES, outcomes, pipelineOp,
  possiblyTakenVersion, VALID_KEYS, versionTaken, type Command, type CommandFamily, type RespOp,
} from './resp-model.ts'
import { formatReply, MalformedReply, readAllReplies, RespConnection, sendAndHangUp, type Reply } from './resp-wire.ts'

const settings = fuzzSettings()
const configFile = join(mkdtempSync(join(tmpdir(), 'shardline-fuzz-')), 'shard.yaml')
writeFileSync(configFile, `limits:\n  maxKeyBytes: ${MAX_KEY_BYTES}\n`)
// Generous: the machine may be busy with other test files; the properties, not the start, are under test.
const shard = await startShardProcess(t, ['--name', 'fuzz', '--config', configFile], 60_000)
const processes = [{ name: 'shard', child: shard.child, output: shard.output }]
const clock = new ClockBounds()
const worlds = new PossibleWorlds(EMPTY_WORLD, fingerprint)

// Every run ends by reading every key back in one pipeline, so a write the model missed cannot
// hide, then once more alone: the connection must still answer after a pipeline of large replies.
const readAll: Command[] = VALID_KEYS.map((key) => ({ name: 'SL.GETV', key }))
const readBack: RespOp[] = [
  labelled({ kind: 'pipeline' as const, commands: readAll }, `read back: pipeline [${readAll.map(describeCommand).join('; ')}]`),
  labelled({ kind: 'command' as const, command: readAll[0] }, `read back again: ${describeCommand(readAll[0])}`),
]

// A connection per run, so that one a run leaves broken cannot fail the runs after it.
async function runSequence(ops: RespOp[], log: RunLog): Promise<void> {
  checkAlive(processes, log)
  const connection = await RespConnection.open(shard.port)
  try {
    const flushed = await connection.command(['FLUSHALL']).catch((error: Error) => error)
    if (flushed instanceof Error) await checkAliveAfterLoss(processes, log)
    if (flushed instanceof Error || flushed.kind !== 'simple' || flushed.text !== 'OK') log.fail(`FLUSHALL before the run answered ${flushed instanceof Error ? flushed.message : formatReply(flushed)}`)
    worlds.reset(EMPTY_WORLD)
    for (const op of [...ops, ...readBack]) {
      if (op.kind === 'frames') await sendFrames(op, log)
      else await sendCommands(connection, op.kind === 'command' ? [op.command] : op.commands, op.label, log)
      checkAlive(processes, log)
    }
  } finally {
    connection.close()
  }
}

async function sendCommands(connection: RespConnection, commands: Command[], label: string, log: RunLog): Promise<void> {
  const versionTexts = commands.map((command) => ('version' in command ? clock.versionText(command.version) : undefined))
  const argsList = commands.map((command, i) => commandArgs(command, versionTexts[i]))
  const sentAt = Date.now()
  let replies: Reply[]
  try {
    replies = await connection.pipeline(argsList)
  } catch (error) {
    log.record(label, `no well-formed reply: ${(error as Error).message}`)
    await checkAliveAfterLoss(processes, log)
    return log.fail(`${label}: ${error instanceof MalformedReply ? 'a malformed reply' : 'no reply'} (${(error as Error).message})`)
  }
  const repliedAt = Date.now()
  commands.forEach((command, i) => {
    const reply = replies[i]
    const context = { sentAt, repliedAt, versionText: versionTexts[i], clock: clock.afterCommand(argsList[i], sentAt, repliedAt, possiblyTakenVersion(versionTexts[i])) }
    const step = `${describeCommand(command)}${versionTexts[i] === undefined ? '' : ` (version ${versionTexts[i]})`}`
    log.record(step, formatReply(reply))
    const allowed = worlds.advance(reply, (world) => outcomes(world, command, context))
    if (allowed) log.fail(`${step} answered ${formatReply(reply)}; the model allows only: ${allowed.join(' | ')}`)
    if (versionTaken(command, reply)) clock.taken(BigInt(versionTexts[i]!))
  })
}

async function sendFrames(op: RespOp & { kind: 'frames' }, log: RunLog): Promise<void> {
  let replies: Reply[]
  try {
    replies = readAllReplies(await sendAndHangUp(shard.port, op.bytes))
  } catch (error) {
    log.record(op.label, (error as Error).message)
    await checkAliveAfterLoss(processes, log)
    return log.fail(`${op.label}: ${(error as Error).message}`)
  }
  log.record(op.label, replies.map(formatReply).join(' ') || '(nothing, then closed)')
  replies.forEach((reply, i) => {
    if (reply.kind === 'error' && !/^ERR /.test(reply.text)) log.fail(`an error reply without the ERR prefix: ${formatReply(reply)}`)
    if (reply.kind === 'error' && /^ERR Protocol error/.test(reply.text) && i !== replies.length - 1) log.fail('the connection went on after a protocol error')
  })
}

function property(name: string, defaultRuns: number, ops: fc.Arbitrary<RespOp[]>): void {
  t.test(name, async () => {
    await checkRuns(settings, name, defaultRuns, ops, runSequence)
  })
}

const sequence = (...arbitraries: fc.Arbitrary<RespOp>[]) => fc.array(fc.oneof(...arbitraries), { minLength: 4, maxLength: 30 })
const commands = (weights: Partial<Record<CommandFamily, number>>) => commandOp(commandArbitrary(weights))

property('strings, expiries and multi-key commands at the edges', 60, sequence(commands({ read: 3, set: 4, multi: 2, mset: 1, expire: 2 })))
property('counters are exact signed 64-bit integers; overflow and non-integers are refused', 100, sequence(commands({ step: 2, incrBy: 4, setCounter: 3, read: 2, expire: 1, multi: 1 })))
property('versioned writes (SL.SETV, SL.DELV) against plain ones: bounded versions, last writer wins', 80, sequence(commands({ setVersioned: 4, deleteVersioned: 2, read: 2, set: 1, multi: 1, step: 1, expire: 1 })))
property('malformed and unfinished frames change nothing and never take the shard down', 60, sequence(framesOp, framesOp, commands({ read: 1, set: 1, incrBy: 1 })))
const everything = commandArbitrary({ read: 3, set: 3, setCounter: 1, multi: 2, mset: 1, expire: 2, step: 1, incrBy: 2, setVersioned: 2, deleteVersioned: 1 })
property('everything at once, pipelined', 80, sequence(commandOp(everything), pipelineOp(everything), framesOp))
