// The regions file `shardline cluster` runs (cli/region-cluster.ts): config/regions.yaml parses, each
// shard's region section is derived from the other regions' routers, and files that cannot work are refused with the reason.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse, stringify } from 'yaml'
import { isRegionsFile, parseRegionsFile, shardRegionSettings } from '../../cli/region-cluster.ts'

const REGIONS = readFileSync(new URL('../../config/regions.yaml', import.meta.url), 'utf8')
type Tree = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** config/regions.yaml with a change applied to its parsed tree, as text again. */
function variant(change: (file: Tree) => void): string {
  const file = parse(REGIONS) as Tree
  change(file)
  return stringify(file)
}
const refusal = (text: string) => {
  try {
    parseRegionsFile(text, 'regions.yaml')
    return ''
  } catch (error) {
    return (error as Error).message
  }
}

t.test('config/regions.yaml: two regions, their own shards, pool main replicated, shards told the other region\'s router', async (t) => {
  t.ok(isRegionsFile(REGIONS))
  t.notOk(isRegionsFile(readFileSync(new URL('../../config/local.yaml', import.meta.url), 'utf8')), 'a router config is one region, as before')
  t.notOk(isRegionsFile('pools: [unclosed'), 'a file that does not parse is left to the router config\'s loader')
  const { regions, shard } = parseRegionsFile(REGIONS, 'config/regions.yaml')
  t.same(regions.map(({ name, config }) => [name, config.region!.id, config.pools.main.shards.length, config.pools.main.region]), [['east', 1, 3, 'replicate'], ['west', 2, 2, 'replicate']])
  t.same(regions.map(({ config }) => [config.listen.data.port, config.listen.admin.port]), [[8080, 9090], [8081, 9091]], 'the ports the issue names')
  t.same(shard, { tombstoneTtlMs: 600_000 })
  const [east, west] = regions
  t.same(shardRegionSettings(regions, east, 'main', () => null), { name: 'east', id: 1, pool: 'main', mode: 'replicate', peers: [{ name: 'west', router: '127.0.0.1:6391' }] })
  t.same(shardRegionSettings(regions, west, 'main', () => ({ ca: '/ca.pem' })), { name: 'west', id: 2, pool: 'main', mode: 'replicate', peers: [{ name: 'east', router: '127.0.0.1:6390', tls: { ca: '/ca.pem' } }] })
})

t.test('peers present the first of the other region\'s region passwords; a region with tenants needs one', async (t) => {
  const { regions } = parseRegionsFile(variant((file) => {
    file.regions.west.region.passwords = ['first', 'second']
    file.regions.east.tenants = [{ name: 'app', tokens: ['t'], permissions: ['read', 'write'], namespace: 'app' }]
  }), 'regions.yaml')
  t.same(shardRegionSettings(regions, regions[0], 'main', () => null).peers, [{ name: 'west', router: '127.0.0.1:6391', password: 'first' }])
  t.throws(() => shardRegionSettings(regions, regions[1], 'main', () => null), /regions\.east: has tenants, so it refuses other regions' shards unless they present a region password/)
  const hashed = parseRegionsFile(variant((file) => (file.regions.west.region.passwords = [`sha256:${'0'.repeat(64)}`])), 'regions.yaml')
  t.throws(() => shardRegionSettings(hashed.regions, hashed.regions[0], 'main', () => null), /must be the password itself/)
})

t.test('files that cannot work are refused before anything starts, with the reason', async (t) => {
  t.match(refusal('regions: {}\n'), 'regions: must map each region\'s name to its router config')
  t.match(refusal(variant((file) => (file.extra = 1))), 'extra: not a known setting')
  t.match(refusal(variant((file) => (file.shard.region = { name: 'east' }))), 'shard.region: is derived')
  t.match(refusal(variant((file) => (file.regions.West = file.regions.west))), 'regions.yaml regions.West: a region\'s name must be')
  t.match(refusal(variant((file) => delete file.regions.west.region)), 'regions.yaml regions.west: pools.main.region: pool main takes region writes (replicate) but the router has no region', 'by the router\'s own loader, without the line numbers of a copy')
  t.match(refusal(variant((file) => {
    delete file.regions.west.region
    file.regions.west.pools.main.region = 'none'
  })), 'regions.west: needs region: {name: west')
  t.match(refusal(variant((file) => (file.regions.west.region.name = 'east'))), 'region.name is east, not west')
  t.match(refusal(variant((file) => (file.regions.west.region.id = 1))), 'regions east and west both have region.id 1')
  t.match(refusal(variant((file) => delete file.regions.west.listen.resp)), 'regions.west: needs listen.resp')
  t.match(refusal(variant((file) => (file.regions.west.pools.main.region = 'none'))), 'regions.west.pools.main: east ships pool main (replicate) to west, which takes no region writes for it')
  t.match(refusal(variant((file) => {
    file.regions.west.pools = { other: file.regions.west.pools.main }
    file.regions.west.defaultPool = 'other'
  })), 'east ships pool main (replicate) to west, which has no such pool')
  t.match(refusal(variant((file) => (file.regions.west.limits = { maxKeyBytes: 0 }))), /^regions\.yaml regions\.west: limits\.maxKeyBytes/, 'a router setting, by the router\'s own loader')
  t.equal(refusal(variant((file) => delete file.regions.west)), '', 'one region alone is a cluster of one region')
})
