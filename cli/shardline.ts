#!/usr/bin/env node
// The `shardline` command: `router`, `shard` and `cluster` run processes, `get`/`set`/`del`
// talk to a router. Each subcommand parses its own flags; configuration errors exit with status 2.
import { ConfigError } from '../common/validate.ts'
import { VERSION } from '../common/version.ts'
import { runClientCommand } from './client-command.ts'
import { runClusterCommand } from './cluster-command.ts'
import { runPlanCommand } from './plan-command.ts'
import { runRebalanceCommand } from './rebalance-command.ts'
import { runRouterCommand } from './router-command.ts'
import { runShardCommand } from './shard-command.ts'

const USAGE = `shardline ${VERSION}
usage: shardline <command> [options]
  router    run one router (HTTP front + admin); shardline router --config <file>
  shard     run one shard process (RESP data port + admin HTTP); shardline shard --help
  cluster   run a router and its loopback shards from one config (npm start runs config/local.yaml)
  rebalance move keys to the shards a router config's ring gives them (after adding, draining or removing shards); shardline rebalance --help
  plan      size a deployment (shards, pods, memory, values.yaml), or --from 3 --to 4: the keys a resize moves; shardline plan --help
  get <key> | set <key> <value> [--ttl s] | del <key>   talk to a router (--router url)
  version   print the version`

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'shard':
      return runShardCommand(rest)
    case 'router':
      return runRouterCommand(rest)
    case 'cluster':
      return runClusterCommand(rest)
    case 'plan':
      return runPlanCommand(rest)
    case 'rebalance':
      return runRebalanceCommand(rest)
    case 'get':
    case 'set':
    case 'del':
      return runClientCommand(command, rest)
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
