// helm/shardline's region settings: rendered through a real Helm, the routers' config and each pool's
// shard config load with the product's own loaders and carry the region; the schema and the templates refuse bad ones.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { parse, parseAllDocuments, stringify } from 'yaml'
import { parseRouterConfig } from '../../router/config.ts'
import { CHART_DIR, loadChartValues, mergeValues, renderRouterConfig } from '../../scripts/render-router-config.ts'
import { findHelm, loadRenderedShardConfig, type Doc } from '../helpers/helm.ts'

type Values = Record<string, unknown>

const helm = findHelm()
const validate = new Ajv({ allErrors: true, strict: true }).compile(JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')))

/** East's values: two pools that cross (one each way of crossing), one that does not, a peer with a password and TLS. */
const east: Values = {
  region: {
    name: 'east',
    id: 1,
    peers: [{ name: 'west', router: 'shardline.cache.svc.west.example:6379', passwordSecret: { name: 'region-west', key: 'password' }, tls: { caSecret: { name: 'region-west', key: 'ca.crt' }, serverName: 'west.example' } }],
    passwords: { existingSecret: 'region-east', key: 'password' },
    shipping: { helloMs: 500 },
  },
  router: { respPort: 6379 },
  pools: { main: { region: 'replicate' }, sessions: { shards: 2, replicasPerShard: 1, maxMemoryMiB: 64, region: 'invalidate' }, local: { shards: 1, replicasPerShard: 0, maxMemoryMiB: 64 } },
  networkPolicy: { regionFrom: [{ ipBlock: { cidr: '10.2.0.0/16' } }] },
}

function helmRun(command: string[], values: Values): { output: string; error: string } {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-helm-regions-'))
  try {
    const file = join(dir, 'values.yaml')
    writeFileSync(file, stringify(values))
    return { output: execFileSync(helm!, [...command, 'cache', CHART_DIR, '--namespace', 'prod', '-f', file], { encoding: 'utf8', stdio: 'pipe' }), error: '' }
  } catch (error) {
    return { output: '', error: String((error as { stderr: Buffer }).stderr) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const render = (values: Values): Doc[] => parseAllDocuments(helmRun(['template'], values).output).map((document) => document.toJS()).filter(Boolean)
const find = (docs: Doc[], kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name)!

t.test('the schema refuses bad region values', async (t) => {
  const values = loadChartValues()
  const accepted = (override: Values) => validate(mergeValues(values, override))
  t.ok(accepted(east), JSON.stringify(validate.errors))
  const refused = (override: Values, why: string) => t.notOk(accepted(override), `refused: ${why}`)
  for (const id of [16, -1, 1.5, '1']) refused({ region: { name: 'east', id } }, `region.id ${JSON.stringify(id)}`)
  for (const name of ['East', '-east', 'us_east', 'a'.repeat(33), ' east']) refused({ region: { name } }, `region.name ${JSON.stringify(name)}`)
  refused({ region: { peers: [{ name: 'West', router: 'west:6379' }] } }, 'a peer name that is no region name')
  refused({ region: { peers: [{ name: '', router: 'west:6379' }] } }, 'an empty peer name')
  refused({ region: { peers: [{ name: 'west', router: 'west' }] } }, 'a peer router that is not host:port')
  refused({ region: { peers: [{ name: 'west' }] } }, 'a peer without its router')
  refused({ region: { peers: [{ name: 'west', router: 'west:6379', password: 'secret' }] } }, 'a password in values: it lives in a Secret')
  refused({ region: { peers: [{ name: 'west', router: 'west:6379', passwordSecret: { name: 'region-west' } }] } }, 'a passwordSecret without its key')
  refused({ region: { peers: Array.from({ length: 16 }, (_, i) => ({ name: `r${i}`, router: `r${i}:6379` })) } }, 'more peers than region ids')
  refused({ region: { shipping: { helloMs: 10 } } }, 'a hello faster than the shards allow')
  refused({ region: { shipping: { maxInFlight: 10 } } }, 'a misspelt shipping setting')
  refused({ region: { tombstoneTtlMs: 0 } }, 'a zero tombstone TTL')
  refused({ pools: { main: { region: 'both' } } }, 'an unknown pool region mode')
  refused({ regions: {} }, 'a misspelt region')
})

if (!helm) {
  t.test('the region settings through helm', { skip: process.env.CI ? false : 'no helm: run `npx node scripts/fetch-helm.ts`' }, async (t) => {
    t.fail('no helm binary: .ci/run should have fetched it with scripts/fetch-helm.ts')
  })
} else {
  t.test('helm refuses bad region values with the schema\'s reason', async (t) => {
    t.match(helmRun(['template'], { region: { name: 'east', id: 16 } }).error, /region\/id/)
    t.match(helmRun(['template'], { region: { name: 'East', id: 1 } }).error, /region\/name/)
  })

  t.test('a region renders into the routers\' config: the region, its password file, each pool\'s mode', async (t) => {
    const docs = render(east)
    const routerYaml = parse(find(docs, 'ConfigMap', 'cache-shardline-router').data!['router.yaml'])
    t.same(routerYaml, renderRouterConfig(mergeValues(loadChartValues(), east), { release: 'cache', namespace: 'prod' }), 'Helm and the script render the same router config')
    const config = parseRouterConfig(stringify(routerYaml), 'router.yaml')
    t.same(config.region, { name: 'east', id: 1, passwords: [{ file: '/var/run/shardline/region/password' }] })
    t.same(Object.fromEntries(Object.entries(config.pools).map(([name, pool]) => [name, pool.region])), { main: 'replicate', sessions: 'invalidate', local: 'none' })
    t.same(config.listen.resp, { host: '0.0.0.0', port: 6379 }, 'the port the peer regions\' shards ship to')
    const router = find(docs, 'Deployment', 'cache-shardline-router').spec.template.spec
    t.same(router.volumes.find((v: { name: string }) => v.name === 'region'), { name: 'region', secret: { secretName: 'region-east', items: [{ key: 'password', path: 'password' }] } })
    t.same(router.containers[0].volumeMounts.find((m: { name: string }) => m.name === 'region'), { name: 'region', mountPath: '/var/run/shardline/region', readOnly: true })
  })

  t.test('each pool\'s shards load a config with their region section: pool, mode, peers with password and CA files', async (t) => {
    const docs = render(east)
    t.same(Object.keys(find(docs, 'ConfigMap', 'cache-shardline-shard').data!).sort(), ['shard-local.yaml', 'shard-main.yaml', 'shard-sessions.yaml'], 'one file per pool')
    const west = { name: 'west', router: 'shardline.cache.svc.west.example:6379', password: { file: '/var/run/shardline/region-peers/west/password' }, tls: { ca: '/var/run/shardline/region-peers/west/ca.crt', serverName: 'west.example' } }
    for (const [pool, mode] of [['main', 'replicate'], ['sessions', 'invalidate'], ['local', 'none']]) {
      const set = find(docs, 'StatefulSet', `cache-shardline-${pool}-s0`)
      const shard = loadRenderedShardConfig(docs, set, 0)
      t.same(shard.region, { name: 'east', id: 1, pool, mode, peers: [west], maxInFlightOps: 1024, scanKeysPerSecond: 100_000, helloMs: 500 }, `${pool}: the region section, shipping settings passed through`)
      t.equal(shard.tombstoneTtlMs, 600_000, `${pool}: tombstones outlast a partition`)
      t.same(shard.auth?.internalPasswords, [{ file: '/var/run/shardline/auth/shard-password' }], `${pool}: auth as without a region`)
      const pod = set.spec.template.spec
      t.same(pod.volumes.find((v: { name: string }) => v.name === 'region-peers').projected.sources, [
        { secret: { name: 'region-west', items: [{ key: 'password', path: 'west/password' }] } },
        { secret: { name: 'region-west', items: [{ key: 'ca.crt', path: 'west/ca.crt' }] } },
      ], `${pool}: the peer's password and CA mounted`)
      t.same(pod.containers[0].volumeMounts.find((m: { name: string }) => m.name === 'region-peers'), { name: 'region-peers', mountPath: '/var/run/shardline/region-peers', readOnly: true })
    }
    const replica = loadRenderedShardConfig(docs, find(docs, 'StatefulSet', 'cache-shardline-main-s1'), 2)
    t.equal(replica.replication.replicaOf, 'cache-shardline-main-s1-0.cache-shardline-shards.prod.svc.cluster.local:6380', 'a replica still follows its primary (it ships only once promoted)')
    t.equal(replica.region?.pool, 'main')
  })

  t.test('NetworkPolicy: the routers\' RESP port from regionFrom; NOTES say where the region ships and takes writes', async (t) => {
    const routers = find(render(east), 'NetworkPolicy', 'cache-shardline-router')
    t.same(routers.spec.ingress.at(-1), { from: [{ ipBlock: { cidr: '10.2.0.0/16' } }], ports: [{ protocol: 'TCP', port: 6379 }] })
    const notes = helmRun(['install', '--dry-run=client'], east).output
    t.match(notes, 'region east (id 1): pools main (replicate), sessions (invalidate) cross to west at shardline.cache.svc.west.example:6379; peer regions\' shards ship here to cache-shardline.prod.svc.cluster.local:6379')
  })

  t.test('region off (the default): no region anywhere, shard.yaml as before, no region volumes', async (t) => {
    const docs = render({ networkPolicy: { regionFrom: [{ ipBlock: { cidr: '10.2.0.0/16' } }] } })
    const routerYaml = parse(find(docs, 'ConfigMap', 'cache-shardline-router').data!['router.yaml'])
    t.notOk('region' in routerYaml)
    t.notOk(Object.values(routerYaml.pools as Record<string, object>).some((pool) => 'region' in pool), 'no pool region key: the config is as before')
    t.same(Object.keys(find(docs, 'ConfigMap', 'cache-shardline-shard').data!), ['shard.yaml'])
    const set = find(docs, 'StatefulSet', 'cache-shardline-main-s0')
    t.equal(loadRenderedShardConfig(docs, set, 0).region, null)
    t.notOk(set.spec.template.spec.volumes.some((v: { name: string }) => v.name === 'region-peers'))
    t.notOk(find(docs, 'Deployment', 'cache-shardline-router').spec.template.spec.volumes.some((v: { name: string }) => v.name === 'region'))
    t.equal(find(docs, 'NetworkPolicy', 'cache-shardline-router').spec.ingress.length, 1, 'regionFrom means nothing without a region')
  })

  t.test('the templates refuse region settings that cannot work, with the reason', async (t) => {
    const failure = (override: Values) => helmRun(['template'], mergeValues(east, override)).error
    t.match(helmRun(['template'], { pools: { main: { region: 'replicate' } } }).error, 'pools.main.region is replicate: set region.name and region.id')
    t.match(failure({ router: { respPort: null } }), 'region.name needs router.respPort')
    t.match(failure({ region: { passwords: { existingSecret: '' } } }), 'region.name with auth.enabled needs region.passwords.existingSecret')
    t.equal(failure({ region: { passwords: { existingSecret: '' } }, auth: { enabled: false } }), '', 'an open region needs no password')
    t.match(failure({ region: { peers: [{ name: 'east', router: 'x:1' }] } }), 'region.peers: east is this region')
    t.match(failure({ region: { peers: [{ name: 'west', router: 'x:1', tls: { serverName: 'west' } }] } }), 'region.peers west: tls needs caSecret, or tls.enabled')
  })
}
