{{- /*
helm/shardline/templates/_helpers.tpl: names, labels, the image, shard pod addresses, shard memory,
the router's config (scripts/render-router-config.ts renders the same config outside Helm), the
shards' config, and where the pods find the auth and TLS Secrets.
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
The shards' config file (shard/config.ts), when auth or TLS is on: the shard password as their
internal one (routers, replicas and the rebalance job present it), the certificate they serve, and
the CA their replication links verify each other with. Empty when both are off.
*/ -}}
{{- define "shardline.shardConfig" -}}
{{- $config := dict -}}
{{- if .Values.auth.enabled -}}
{{- $_ := set $config "auth" (dict "internalPasswords" (list (dict "file" (printf "%s/shard-password" (include "shardline.authDir" .))))) -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $tls := include "shardline.serverTls" . | fromYaml -}}
{{- $_ := set $tls "peers" (dict "ca" (printf "%s/ca.crt" (include "shardline.tlsDir" .))) -}}
{{- $_ := set $config "tls" $tls -}}
{{- end -}}
{{- if $config -}}
{{- toYaml $config -}}
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
