// `shardline shard`: loads the shard's config, gives V8 a heap that fits its memory budget,
// starts the shard, prints its addresses, and shuts down cleanly on SIGTERM or SIGINT.
import { createLogger } from '../common/logger.ts'
import { loadShardConfig, SHARD_USAGE } from '../shard/config.ts'
import { installShutdown } from './shutdown.ts'

// Measured with a 64mb shard filled with ten times its budget: RSS 369 MB without this flag,
// 184 MB with it (V8 grows the heap less eagerly and keeps smaller young-generation spaces),
// for about 20% fewer pipelined SETs per second. Memory is what a cache is bought for.
const HEAP_FLAGS = ['--optimize-for-size']

// glibc raises its mmap threshold each time a large block is freed, after which 1 MiB values and
// reply buffers come from arenas that keep their pages: RSS then stays at the high-water mark of
// the last burst. A fixed threshold returns large blocks to the kernel on free, and two arenas stop
// libuv's and V8's threads from each keeping their own. Measured in test/shard/client-limits.test.ts:
// the highest attack peak fell from 199–218 MB to 185–197 MB, and the resting RSS from 158 to 139 MB.
// An operator's own setting of either variable wins.
const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' }

/**
 * V8's old-space limit for a budget: the stored bytes plus room for garbage between collections
 * and the process's own objects. Too low and V8 aborts; the budget itself is what bounds the data.
 */
export function heapLimitMb(maxMemory: number): number {
  return Math.ceil((maxMemory * 1.1) / 2 ** 20) + 128
}

export async function runShardCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(SHARD_USAGE)
    return
  }
  const config = loadShardConfig(argv)
  const wantedMb = heapLimitMb(config.maxMemory)
  // The heap limit can only be set when V8 starts: replace this process with one that has it
  // (same pid, so signals and kill -9 from supervisors still reach the shard).
  if (!process.env.SHARDLINE_HEAP_SET) {
    process.execve!(process.execPath, [process.execPath, `--max-old-space-size=${wantedMb}`, ...HEAP_FLAGS, ...process.execArgv, ...process.argv.slice(1)], {
      ...MALLOC_ENV,
      ...process.env,
      SHARDLINE_HEAP_SET: '1',
    })
  }
  const log = createLogger(`shard:${config.name}`)
  // Loaded only in the process that runs the shard, not in the one that re-executes itself above.
  const { startShard } = await import('../shard/shard-process.ts')
  const shard = await startShard(config, log)
  console.log(`shardline shard ${config.name} ready: resp ${shard.data.address}:${shard.data.port} admin ${config.tls ? 'https' : 'http'}://${shard.admin.address}:${shard.admin.port}`)
  installShutdown(log, () => shard.close(4000))
}
