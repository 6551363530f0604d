#!/usr/bin/env node
// The `shardline` command: `shard` runs a shard process, `start` runs the local setup for
// `npm start`. Each subcommand parses its own flags; configuration errors exit with status 2.
import { ConfigError } from '../common/validate.ts'
import { VERSION } from '../common/version.ts'
import { runShardCommand } from './shard-command.ts'

const USAGE = `shardline ${VERSION}
usage: shardline <command> [options]
  shard     run one shard process (RESP data port + admin HTTP); shardline shard --help
  start     run the local setup (what npm start runs)
  version   print the version`

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'shard':
      return runShardCommand(rest)
    case 'start':
      return runShardCommand(['--port', '6380', '--admin-port', '9380', '--name', 'local', ...rest])
    case 'version':
    case '--version':
      console.log(VERSION)
      return
    case undefined:
    case 'help':
    case '--help':
      console.log(USAGE)
      return
    default:
      console.error(`shardline: unknown command "${command}"\n${USAGE}`)
      process.exitCode = 2
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    console.error(`shardline: ${(error as Error).message}`)
    process.exit(2)
  }
  console.error(error)
  process.exit(1)
})
