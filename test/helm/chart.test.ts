// helm/shardline without Helm: values.yaml against values.schema.json (draft-07), every .Values path a
// template uses exists, the non-template files parse, the README covers every value, dashboards are current.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { parse } from 'yaml'
import { SHARD_BASE_MIB, planCapacity, planValues } from '../../common/capacity.ts'
import { DASHBOARD_DIR, renderDashboards } from '../../scripts/build-dashboards.ts'
import { CHART_DIR, loadChartValues, mergeValues } from '../../scripts/render-router-config.ts'

type Values = Record<string, unknown>
const read = (file: string) => readFileSync(join(CHART_DIR, file), 'utf8')
const values = parse(read('values.yaml')) as Values
const schema = JSON.parse(read('values.schema.json'))
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema)
const templates = readdirSync(join(CHART_DIR, 'templates')).map((file) => ({ file, text: read(join('templates', file)) }))

/** Every path to a leaf of a values tree ("router.config.health.heartbeatMs"); empty maps and lists are leaves. */
function leafPaths(tree: unknown, prefix = ''): string[] {
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree) || Object.keys(tree).length === 0) return [prefix]
  return Object.entries(tree).flatMap(([key, value]) => leafPaths(value, prefix ? `${prefix}.${key}` : key))
}

function has(tree: unknown, path: string[]): boolean {
  let node = tree
  for (const step of path) {
    if (typeof node !== 'object' || node === null || !(step in node)) return false
    node = (node as Values)[step]
  }
  return true
}

t.test('values.yaml validates against values.schema.json (draft-07)', async (t) => {
  t.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#')
  t.ok(validate(values), JSON.stringify(validate.errors))
})

t.test('the schema refuses values that would render a broken release', async (t) => {
  const refused = (override: Values, why: string) => {
    t.notOk(validate(mergeValues(values, override)), `refused: ${why}`)
  }
  refused({ pools: { Main: { shards: 1, replicasPerShard: 0, maxMemoryMiB: 64 } } }, 'a pool name that is no Kubernetes name')
  refused({ pools: { main: { shards: 0 } } }, 'a pool without shards')
  refused({ pools: { main: { maxMemoryMiB: '1gb' } } }, 'a budget that is not MiB')
  refused({ pools: { main: { policy: 'random' } } }, 'an unknown eviction policy')
  refused({ router: { configChange: 'restart' } }, 'an unknown configChange')
  refused({ router: { confg: {} } }, 'a misspelt router setting')
  refused({ shard: { antiAffinity: 'strict' } }, 'an unknown anti-affinity')
  refused({ router: { config: { health: { maxKnockedOutFraction: 2 } } } }, 'a router setting the router would refuse')
  refused({ pools: { main: { drainingShards: -1 } } }, 'a negative drainingShards')
  refused({ pools: { main: { drainingShards: '1' } } }, 'a drainingShards that is not an integer')
  refused({ pools: { main: { standbyShards: -1 } } }, 'a negative standbyShards')
  refused({ router: { config: { migration: { windowMs: 604_800_001 } } } }, 'a migration window past 7 days')
  refused({ router: { config: { migration: { window: 1000 } } } }, 'a misspelt migration setting')
  refused({ rebalance: { rateKeysPerSecond: -1 } }, 'a negative rebalance rate')
  refused({ rebalance: { startDelaySeconds: 1.5 } }, 'a fractional start delay')
  refused({ rebalance: { enable: true } }, 'a misspelt rebalance setting')
  t.ok(validate(mergeValues(values, { pools: { main: { shards: 5, drainingShards: 1, standbyShards: 1 } }, rebalance: { enabled: true, rateKeysPerSecond: 0 }, router: { config: { migration: { windowMs: 0 } } } })), JSON.stringify(validate.errors))
  t.ok(validate(mergeValues(values, { pools: { main: null, hot: { shards: 2, replicasPerShard: 1, maxMemoryMiB: 64, hotKeys: { copies: 4 } } }, defaultPool: 'hot', routes: [{ prefix: 'h:', pool: 'hot' }] })), JSON.stringify(validate.errors))
})

t.test('every .Values path the templates use exists in values.yaml', async (t) => {
  let references = 0
  for (const { file, text } of templates) {
    for (const match of text.matchAll(/\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
      references++
      const path = match[1].slice(1).split('.')
      t.ok(has(values, path), `${file}: .Values.${path.join('.')} is in values.yaml`)
    }
  }
  t.ok(references > 50, `${references} references checked`)
})

t.test('every value is used by a template and described in the chart README', async (t) => {
  const readme = read('README.md')
  const used = templates.map((template) => template.text).join('\n')
  // Pools are a map of names: values.yaml's `main` stands for any <name>.
  const paths = leafPaths(values).map((path) => path.replace(/^pools\.main\./, 'pools.<name>.'))
  // Free-form maps passed through whole are described as one value.
  const wholeMaps = ['router.resources', 'rebalance.resources', 'podSecurityContext', 'securityContext', 'dashboards.labels']
  for (const path of new Set(paths.map((path) => wholeMaps.find((map) => path.startsWith(`${map}.`)) ?? path))) {
    t.ok(readme.includes(`\`${path}\``), `README describes ${path}`)
    const last = path.split('.').slice(path.startsWith('router.config.') ? 2 : -1).join('.')
    const usedBy = path.startsWith('router.config.') ? used.includes('.Values.router.config') : path.startsWith('pools.<name>.') ? used.includes(`$pool.${last}`) || used.includes('$pool.hotKeys') : used.includes(`.Values.${path}`) || used.includes(`.Values.${path.split('.').slice(0, -1).join('.')} `)
    t.ok(usedBy, `a template uses ${path}`)
  }
})

t.test('the non-template files parse', async (t) => {
  const chart = parse(read('Chart.yaml'))
  t.equal(chart.apiVersion, 'v2')
  t.equal(chart.name, 'shardline')
  t.equal(chart.appVersion, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version, 'appVersion follows package.json')
  t.type(values, 'object')
  for (const file of readdirSync(DASHBOARD_DIR)) {
    const dashboard = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8'))
    t.ok(dashboard.uid && dashboard.panels.length > 0, `${file} is a dashboard with panels`)
    t.ok(dashboard.panels.every((panel: { type: string; targets?: unknown[] }) => panel.type === 'row' || (panel.targets?.length ?? 0) > 0), `${file}: every panel has a query`)
  }
})

t.test('the dashboards on disk are what scripts/build-dashboards.ts writes', async (t) => {
  const built = renderDashboards()
  t.same(readdirSync(DASHBOARD_DIR).sort(), [...built.keys()].sort())
  for (const [file, text] of built) t.equal(readFileSync(join(DASHBOARD_DIR, file), 'utf8'), text, `${file} is current (npx node scripts/build-dashboards.ts)`)
})

t.test('the dashboards ship as ConfigMaps labelled grafana_dashboard: "1"', async (t) => {
  t.same((values.dashboards as Values).labels, { grafana_dashboard: '1' })
  const template = templates.find((template) => template.file === 'dashboards.yaml')!.text
  t.match(template, /\.Files\.Glob "dashboards\/\*\.json"/)
  t.match(template, /toYaml \$\.Values\.dashboards\.labels/)
})

t.test('shard memory: the chart and the planner use the measured base and the same formula', async (t) => {
  t.equal((values.shard as Values).memoryBaseMiB, SHARD_BASE_MIB)
  const helpers = templates.find((template) => template.file === '_helpers.tpl')!.text
  t.match(helpers, /add \(int \.pool\.maxMemoryMiB\) \(int \.root\.Values\.shard\.memoryBaseMiB\)/, 'request = budget + base')
  t.match(helpers, /add \(div \(mul \(int \.pool\.maxMemoryMiB\) 11\) 10\) 1 128 \(int \.root\.Values\.shard\.memoryBaseMiB\)/, 'limit = floor(1.1 x budget) + 1 + 128 + base')
})

t.test('the values shardline plan prints validate against the schema', async (t) => {
  const plan = planCapacity({ dataBytes: 2 ** 40, requestsPerSecond: 100_000, valueBytes: 1024, keyBytes: 32, replicas: 2, nodeMemoryBytes: 32 * 2 ** 30, usableMemoryBytes: 24 * 2 ** 30, nodeThroughput: 20_000, shardsPerNode: 1, routerThroughput: 20_000 })
  const merged = mergeValues(loadChartValues(), planValues(plan))
  t.ok(validate(merged), JSON.stringify(validate.errors))
})
