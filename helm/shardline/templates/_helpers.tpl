{{- /*
helm/shardline/templates/_helpers.tpl: names, labels, the image, shard pod addresses, shard memory,
the router's config (scripts/render-router-config.ts renders the same config outside Helm), the
shards' config, the region settings, and where the pods find the auth, TLS and region Secrets.
*/ -}}

{{- define "shardline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shardline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shardline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shardline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shardline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shardline.labels" -}}
helm.sh/chart: {{ include "shardline.chart" . }}
{{ include "shardline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "shardline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "shardline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shardline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* The shards' headless Service: it gives every shard pod a stable DNS name. */ -}}
{{- define "shardline.shardService" -}}
{{- printf "%s-shards" (include "shardline.fullname" .) -}}
{{- end -}}

{{- /* One shard's StatefulSet: dict "root" $ "pool" name "index" i. Pods are <name>-0 (primary), -1.. */ -}}
{{- define "shardline.shardSetName" -}}
{{- $name := printf "%s-%s-s%d" (include "shardline.fullname" .root) .pool (int .index) -}}
{{- if gt (len $name) 52 -}}
{{- fail (printf "shard StatefulSet name %s is longer than 52 characters: shorten the release name, fullnameOverride or the pool's name" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- /* A shard pod's DNS name: dict "root" $ "pool" name "index" i "ordinal" n. */ -}}
{{- define "shardline.shardHost" -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "shardline.shardSetName" .) (int .ordinal) (include "shardline.shardService" .root) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- /* Pod memory from the budget (common/capacity.ts has the same math): dict "pool" $pool "root" $. */ -}}
{{- define "shardline.shardMemoryRequest" -}}
{{- add (int .pool.maxMemoryMiB) (int .root.Values.shard.memoryBaseMiB) -}}Mi
{{- end -}}
{{- define "shardline.shardMemoryLimit" -}}
{{- add (div (mul (int .pool.maxMemoryMiB) 11) 10) 1 128 (int .root.Values.shard.memoryBaseMiB) -}}Mi
{{- end -}}

{{- /*
The router's config: every pool's shards but the last standbyShards (running, not yet or no longer
known to the routers), each with its primary (ordinal 0) and replicas (1..), the last drainingShards
of them marked draining, and the pool's hot-key settings; the routes, listen addresses, workers, then
router.config and router.extraConfig merged over it.
*/ -}}
{{- define "shardline.routerConfig" -}}
{{- $root := . -}}
{{- $pools := dict -}}
{{- range $poolName, $pool := .Values.pools -}}
{{- $draining := int (default 0 $pool.drainingShards) -}}
{{- $standby := int (default 0 $pool.standbyShards) -}}
{{- $listed := sub (int $pool.shards) $standby -}}
{{- if ge (add $draining $standby) (int $pool.shards) -}}
{{- fail (printf "pools.%s.drainingShards (%d) + standbyShards (%d) must be less than pools.%s.shards (%d): a pool needs at least one shard that owns keys" $poolName $draining $standby $poolName (int $pool.shards)) -}}
{{- end -}}
{{- $shards := list -}}
{{- range $i := until (int $listed) -}}
{{- $destinations := list -}}
{{- range $ordinal := until (int (add 1 $pool.replicasPerShard)) -}}
{{- $host := include "shardline.shardHost" (dict "root" $root "pool" $poolName "index" $i "ordinal" $ordinal) -}}
{{- $destinations = append $destinations (dict "address" (printf "%s:%d" $host (int $root.Values.shard.port)) "admin" (printf "%s:%d" $host (int $root.Values.shard.adminPort))) -}}
{{- end -}}
{{- $shard := dict "name" (printf "s%d" $i) "primary" (first $destinations) "replicas" (rest $destinations) -}}
{{- if ge $i (sub $listed $draining) -}}
{{- $_ := set $shard "draining" true -}}
{{- end -}}
{{- $shards = append $shards $shard -}}
{{- end -}}
{{- $poolConfig := dict "shards" $shards -}}
{{- if hasKey $pool "hotKeys" -}}
{{- $_ := set $poolConfig "hotKeys" (deepCopy $pool.hotKeys) -}}
{{- end -}}
{{- if ne (include "shardline.poolRegionMode" (dict "root" $root "pool" $poolName)) "none" -}}
{{- $_ := set $poolConfig "region" $pool.region -}}
{{- end -}}
{{- $_ := set $pools $poolName $poolConfig -}}
{{- end -}}
{{- $listen := dict "data" (printf "0.0.0.0:%d" (int .Values.router.port)) "admin" (printf "0.0.0.0:%d" (int .Values.router.adminPort)) -}}
{{- if .Values.router.respPort -}}
{{- $_ := set $listen "resp" (printf "0.0.0.0:%d" (int .Values.router.respPort)) -}}
{{- end -}}
{{- $config := dict "listen" $listen "pools" $pools "routes" .Values.routes "defaultPool" .Values.defaultPool "workers" (int .Values.router.workers) -}}
{{- $shardAccess := dict -}}
{{- if .Values.auth.enabled -}}
{{- $tenants := list -}}
{{- range $tenant := .Values.auth.tenants -}}
{{- $tenants = append $tenants (merge (dict "tokens" (list (dict "file" (printf "%s/token-%s" (include "shardline.authDir" $root) $tenant.name)))) (deepCopy $tenant)) -}}
{{- end -}}
{{- $_ := set $config "tenants" $tenants -}}
{{- $_ := set $config "admin" (dict "metrics" .Values.auth.metrics) -}}
{{- $_ := set $shardAccess "password" (dict "file" (printf "%s/shard-password" (include "shardline.authDir" $root))) -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $_ := set $config "tls" (include "shardline.serverTls" . | fromYaml) -}}
{{- $_ := set $shardAccess "tls" (dict "ca" (printf "%s/ca.crt" (include "shardline.tlsDir" $root))) -}}
{{- end -}}
{{- if $shardAccess -}}
{{- $_ := set $config "shardAccess" $shardAccess -}}
{{- end -}}
{{- if .Values.region.name -}}
{{- $region := dict "name" .Values.region.name "id" (int .Values.region.id) -}}
{{- if .Values.region.passwords.existingSecret -}}
{{- $_ := set $region "passwords" (list (dict "file" (printf "%s/password" (include "shardline.regionDir" .)))) -}}
{{- end -}}
{{- $_ := set $config "region" $region -}}
{{- end -}}
{{- $config = mustMergeOverwrite $config (deepCopy .Values.router.config) -}}
{{- $config = mustMergeOverwrite $config (deepCopy .Values.router.extraConfig) -}}
{{- toYaml $config -}}
{{- end -}}

{{- /* prometheus.io annotations for annotation-based scraping: the admin port's /metrics. */ -}}
{{- define "shardline.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}

{{- /* Where the pods mount the auth Secret (token-<tenant>, shard-password) and the TLS Secret (tls.crt, tls.key, ca.crt). */ -}}
{{- define "shardline.authDir" -}}/var/run/shardline/auth{{- end -}}
{{- define "shardline.tlsDir" -}}/var/run/shardline/tls{{- end -}}

{{- define "shardline.authSecretName" -}}
{{- default (printf "%s-auth" (include "shardline.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "shardline.tlsSecretName" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) (not .Values.tls.certManager.enabled) -}}
{{- fail "tls.enabled needs its certificate: tls.existingSecret (a Secret with tls.crt, tls.key and ca.crt) or tls.certManager.enabled with tls.certManager.issuerRef" -}}
{{- end -}}
{{- default (printf "%s-tls" (include "shardline.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- /* The certificate a router or shard serves (the server part of their TLS settings). */ -}}
{{- define "shardline.serverTls" -}}
{{- $dir := include "shardline.tlsDir" . -}}
{{- toYaml (dict "cert" (printf "%s/tls.crt" $dir) "key" (printf "%s/tls.key" $dir) "minVersion" .Values.tls.minVersion) -}}
{{- end -}}

{{- /*
The shards' config file (shard/config.ts) of one pool, dict "root" $ "pool" name, when auth, TLS or
a region is on: the shard password as their internal one (routers, replicas and the rebalance job
present it), the certificate they serve, the CA their replication links verify each other with,
and the region they ship the pool's writes from. Empty when all are off.
*/ -}}
{{- define "shardline.shardConfig" -}}
{{- $root := .root -}}
{{- $config := dict -}}
{{- if $root.Values.auth.enabled -}}
{{- $_ := set $config "auth" (dict "internalPasswords" (list (dict "file" (printf "%s/shard-password" (include "shardline.authDir" $root))))) -}}
{{- end -}}
{{- if $root.Values.tls.enabled -}}
{{- $tls := include "shardline.serverTls" $root | fromYaml -}}
{{- $_ := set $tls "peers" (dict "ca" (printf "%s/ca.crt" (include "shardline.tlsDir" $root))) -}}
{{- $_ := set $config "tls" $tls -}}
{{- end -}}
{{- if $root.Values.region.name -}}
{{- $_ := set $config "tombstoneTtlMs" (int $root.Values.region.tombstoneTtlMs) -}}
{{- $_ := set $config "region" (include "shardline.shardRegion" . | fromYaml) -}}
{{- end -}}
{{- if $config -}}
{{- toYaml $config -}}
{{- end -}}
{{- end -}}

{{- /* The shard config's file name in its ConfigMap: one per pool with a region (the pool is in it), else one for all. */ -}}
{{- define "shardline.shardConfigFile" -}}
{{- if .root.Values.region.name -}}shard-{{ .pool }}.yaml{{- else -}}shard.yaml{{- end -}}
{{- end -}}

{{- /*
Multi-region: where the routers mount region.passwords, and the shards each peer's password and CA
(<regionPeersDir>/<peer>/password, ca.crt). A pool's mode, dict "root" $ "pool" name: none without a
region; a pool that asks for one without region.name, and a region without the RESP port its peers
ship to or (with tenants) a password they can present, fail the render with the reason.
*/ -}}
{{- define "shardline.regionDir" -}}/var/run/shardline/region{{- end -}}
{{- define "shardline.regionPeersDir" -}}/var/run/shardline/region-peers{{- end -}}

{{- define "shardline.poolRegionMode" -}}
{{- $region := .root.Values.region -}}
{{- $mode := (index .root.Values.pools .pool).region | default "none" -}}
{{- if and (ne $mode "none") (not $region.name) -}}
{{- fail (printf "pools.%s.region is %s: set region.name and region.id (this release's region)" .pool $mode) -}}
{{- end -}}
{{- if $region.name -}}
{{- if not .root.Values.router.respPort -}}
{{- fail "region.name needs router.respPort: the peer regions' shards ship to the routers' RESP port" -}}
{{- end -}}
{{- if and .root.Values.auth.enabled (not $region.passwords.existingSecret) -}}
{{- fail "region.name with auth.enabled needs region.passwords.existingSecret: routers with tenants refuse the peer regions' shards unless they present a region password" -}}
{{- end -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{- /* A pool's shards' region section (common/region.ts ShardRegionConfig): dict "root" $ "pool" name. */ -}}
{{- define "shardline.shardRegion" -}}
{{- $root := .root -}}
{{- $region := $root.Values.region -}}
{{- $peers := list -}}
{{- range $peer := $region.peers -}}
{{- if eq $peer.name $region.name -}}
{{- fail (printf "region.peers: %s is this region (region.name)" $peer.name) -}}
{{- end -}}
{{- $dir := printf "%s/%s" (include "shardline.regionPeersDir" $root) $peer.name -}}
{{- $entry := dict "name" $peer.name "router" $peer.router -}}
{{- if $peer.passwordSecret -}}
{{- $_ := set $entry "password" (dict "file" (printf "%s/password" $dir)) -}}
{{- end -}}
{{- if $peer.tls -}}
{{- $tls := dict -}}
{{- if $peer.tls.caSecret -}}
{{- $_ := set $tls "ca" (printf "%s/ca.crt" $dir) -}}
{{- else if $root.Values.tls.enabled -}}
{{- $_ := set $tls "ca" (printf "%s/ca.crt" (include "shardline.tlsDir" $root)) -}}
{{- else -}}
{{- fail (printf "region.peers %s: tls needs caSecret, or tls.enabled (this release's ca.crt)" $peer.name) -}}
{{- end -}}
{{- with $peer.tls.serverName -}}
{{- $_ := set $tls "serverName" . -}}
{{- end -}}
{{- $_ := set $entry "tls" $tls -}}
{{- end -}}
{{- $peers = append $peers $entry -}}
{{- end -}}
{{- $section := dict "name" $region.name "id" (int $region.id) "pool" .pool "mode" (include "shardline.poolRegionMode" .) "peers" $peers -}}
{{- toYaml (mustMergeOverwrite $section (deepCopy $root.Values.region.shipping)) -}}
{{- end -}}

{{- /* The routers' volume with region.passwords, and the shards' with each peer's password and CA: dict "root" $ "kind" router|shard; empty when there is none. */ -}}
{{- define "shardline.regionVolume" -}}
{{- $region := .root.Values.region -}}
{{- if $region.name -}}
{{- if and (eq .kind "router") $region.passwords.existingSecret -}}
{{- toYaml (list (dict "name" "region" "secret" (dict "secretName" $region.passwords.existingSecret "items" (list (dict "key" .root.Values.region.passwords.key "path" "password"))))) -}}
{{- else if eq .kind "shard" -}}
{{- $sources := list -}}
{{- range $peer := $region.peers -}}
{{- with $peer.passwordSecret -}}
{{- $sources = append $sources (dict "secret" (dict "name" .name "items" (list (dict "key" .key "path" (printf "%s/password" $peer.name))))) -}}
{{- end -}}
{{- if $peer.tls -}}
{{- with $peer.tls.caSecret -}}
{{- $sources = append $sources (dict "secret" (dict "name" .name "items" (list (dict "key" .key "path" (printf "%s/ca.crt" $peer.name))))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $sources -}}
{{- toYaml (list (dict "name" "region-peers" "projected" (dict "sources" $sources))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* Where that volume is mounted (the whole directory: a rotated Secret reaches the files in place): dict "root" $ "kind" router|shard. */ -}}
{{- define "shardline.regionVolumeMount" -}}
{{- with include "shardline.regionVolume" . | fromYamlArray -}}
{{- $volume := first . -}}
{{- toYaml (list (dict "name" $volume.name "mountPath" (ternary (include "shardline.regionDir" $.root) (include "shardline.regionPeersDir" $.root) (eq $.kind "router")) "readOnly" true)) -}}
{{- end -}}
{{- end -}}

{{- /*
The Secret volumes a pod needs: dict "root" $ "tokens" bool. Routers get every key of the auth
Secret; shards and the rebalance job only the shard password. Empty when auth and TLS are off.
*/ -}}
{{- define "shardline.secretVolumes" -}}
{{- $volumes := list -}}
{{- if .root.Values.auth.enabled -}}
{{- $secret := dict "secretName" (include "shardline.authSecretName" .root) -}}
{{- if not .tokens -}}
{{- $_ := set $secret "items" (list (dict "key" "shard-password" "path" "shard-password")) -}}
{{- end -}}
{{- $volumes = append $volumes (dict "name" "auth" "secret" $secret) -}}
{{- end -}}
{{- if .root.Values.tls.enabled -}}
{{- $volumes = append $volumes (dict "name" "tls" "secret" (dict "secretName" (include "shardline.tlsSecretName" .root))) -}}
{{- end -}}
{{- if $volumes -}}
{{- toYaml $volumes -}}
{{- end -}}
{{- end -}}

{{- /* Where those volumes are mounted: whole directories, never a subPath, so a rotated Secret reaches the files in place. */ -}}
{{- define "shardline.secretVolumeMounts" -}}
{{- $mounts := list -}}
{{- if .Values.auth.enabled -}}
{{- $mounts = append $mounts (dict "name" "auth" "mountPath" (include "shardline.authDir" .) "readOnly" true) -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $mounts = append $mounts (dict "name" "tls" "mountPath" (include "shardline.tlsDir" .) "readOnly" true) -}}
{{- end -}}
{{- if $mounts -}}
{{- toYaml $mounts -}}
{{- end -}}
{{- end -}}

{{- /* The probes' scheme: the admin port serves HTTPS with TLS on (the kubelet does not verify it). */ -}}
{{- define "shardline.probeScheme" -}}
{{- if .Values.tls.enabled }}
scheme: HTTPS
{{- end }}
{{- end -}}

{{- /* The names the certificate must be valid for: the router Services and every shard pod. */ -}}
{{- define "shardline.tlsNames" -}}
{{- $fullname := include "shardline.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $domain := .Values.clusterDomain -}}
{{- $shards := printf "%s.%s.svc.%s" (include "shardline.shardService" .) $ns $domain -}}
{{- toYaml (list $fullname (printf "%s.%s" $fullname $ns) (printf "%s.%s.svc" $fullname $ns) (printf "%s.%s.svc.%s" $fullname $ns $domain) (printf "%s-router-admin.%s.svc" $fullname $ns) $shards (printf "*.%s" $shards)) -}}
{{- end -}}
