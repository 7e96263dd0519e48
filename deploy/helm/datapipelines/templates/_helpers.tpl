{{/* Chart name. */}}
{{- define "datapipelines.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped prefix of every resource name. */}}
{{- define "datapipelines.fullname" -}}
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

{{/* Standard labels. */}}
{{- define "datapipelines.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "datapipelines.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: datapipelines
{{- end -}}

{{/* Selector labels of one component: include "datapipelines.selectorLabels" (dict "ctx" . "component" "api"). */}}
{{- define "datapipelines.selectorLabels" -}}
app.kubernetes.io/name: {{ include "datapipelines.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of a component's pods: the common labels and its selector labels, each key once
(a key written twice is refused by strict YAML parsers):
include "datapipelines.podLabels" (dict "ctx" . "component" "api"). */}}
{{- define "datapipelines.podLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: datapipelines
{{ include "datapipelines.selectorLabels" . }}
{{- end -}}

{{- define "datapipelines.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "datapipelines.runnerImage" -}}
{{- printf "%s:%s" .Values.runner.image.repository (default .Chart.AppVersion .Values.runner.image.tag) -}}
{{- end -}}

{{- define "datapipelines.operatorServiceAccountName" -}}
{{- default (printf "%s-operator" (include "datapipelines.fullname" .)) .Values.serviceAccount.operatorName -}}
{{- end -}}

{{- define "datapipelines.apiServiceAccountName" -}}
{{- default (printf "%s-api" (include "datapipelines.fullname" .)) .Values.serviceAccount.apiName -}}
{{- end -}}

{{- define "datapipelines.apiSecretName" -}}
{{- default (printf "%s-api-key" (include "datapipelines.fullname" .)) .Values.api.existingSecret -}}
{{- end -}}

{{/* The namespace the operator and API serve. */}}
{{- define "datapipelines.watchNamespace" -}}
{{- if .Values.singleNamespace -}}{{ .Release.Namespace }}{{- else -}}{{ .Values.watchNamespace }}{{- end -}}
{{- end -}}

{{/* Environment shared by operator and API. */}}
{{- define "datapipelines.commonEnv" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: DATAPIPELINES_NAMESPACE
  value: {{ include "datapipelines.watchNamespace" . | quote }}
- name: DATAPIPELINES_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- with .Values.kubeApiServer }}
{{- $hostport := (urlParse .).host }}
- name: DATAPIPELINES_KUBE_API
  value: {{ . | quote }}
# The in-cluster client configuration of kopf and kubernetes_asyncio reads these two: point them
# at the apiserver itself instead of the `kubernetes` Service (unreachable without kube-proxy).
- name: KUBERNETES_SERVICE_HOST
  value: {{ regexReplaceAll ":[0-9]+$" $hostport "" | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ default "443" (regexFind "[0-9]+$" $hostport) | quote }}
{{- end }}
{{- if .Values.history.existingSecret }}
- name: DATAPIPELINES_HISTORY_DSN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.history.existingSecret }}
      key: {{ .Values.history.existingSecretKey }}
{{- end }}
{{- end -}}

{{/* Writable scratch volume for a read-only root filesystem. */}}
{{- define "datapipelines.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* The namespaces that hold connections (runner ServiceAccount/RBAC, warehouse PVC): the
release namespace, .Values.namespaces and a watchNamespace list. A comma-separated string. */}}
{{- define "datapipelines.connectionNamespaces" -}}
{{- $all := list .Release.Namespace -}}
{{- range .Values.namespaces }}{{- $all = append $all . -}}{{- end -}}
{{- if not .Values.singleNamespace -}}
{{- range (splitList "," .Values.watchNamespace) }}{{- if trim . }}{{- $all = append $all (trim .) -}}{{- end }}{{- end -}}
{{- end -}}
{{- $all | uniq | sortAlpha | join "," -}}
{{- end -}}

{{/* The watchNamespace list as a comma-separated string ("" = all namespaces). */}}
{{- define "datapipelines.watchList" -}}
{{- $out := list -}}
{{- range (splitList "," .Values.watchNamespace) }}{{- if trim . }}{{- $out = append $out (trim .) -}}{{- end }}{{- end -}}
{{- $out | join "," -}}
{{- end -}}

{{/* The warehouse claim name runner pods mount ("" = no warehouse volume). */}}
{{- define "datapipelines.warehouseClaim" -}}
{{- if .Values.warehouse.persistence.enabled -}}
{{- default .Values.warehouse.persistence.claimName .Values.warehouse.persistence.existingClaim -}}
{{- end -}}
{{- end -}}

{{/* Volume types connections may use (sandbox.volumeTypes, plus hostPath when allowed). */}}
{{- define "datapipelines.volumeTypes" -}}
{{- $types := .Values.sandbox.volumeTypes -}}
{{- if .Values.sandbox.allowHostPath }}{{- $types = append $types "hostPath" -}}{{- end -}}
{{- $types | uniq | join "," -}}
{{- end -}}

{{/* Secrets of the installation no connection may reference: every Secret the chart names
(the API key, the scoped keys, the history DSN, imagePullSecrets, the Ingress's TLS secrets, Secrets read by
extraEnv) and sandbox.deniedSecrets. A Secret named anywhere in a rendered manifest of the
chart and missing here fails tests/chart/test_chart.py. */}}
{{- define "datapipelines.deniedSecrets" -}}
{{- $denied := list (include "datapipelines.apiSecretName" .) -}}
{{- with .Values.history.existingSecret }}{{- $denied = append $denied . -}}{{- end -}}
{{- with .Values.api.keysSecret }}{{- $denied = append $denied . -}}{{- end -}}
{{- with .Values.api.console.existingSecret }}{{- $denied = append $denied . -}}{{- end -}}
{{- range .Values.imagePullSecrets }}{{- $denied = append $denied (kindIs "string" . | ternary . (get . "name")) -}}{{- end -}}
{{- range .Values.api.ingress.tls }}{{- with .secretName }}{{- $denied = append $denied . -}}{{- end -}}{{- end -}}
{{- range (concat .Values.api.extraEnv .Values.operator.extraEnv) }}
{{- with .valueFrom }}{{- with .secretKeyRef }}{{- $denied = append $denied .name -}}{{- end -}}{{- end -}}
{{- end -}}
{{- range .Values.sandbox.deniedSecrets }}{{- $denied = append $denied . -}}{{- end -}}
{{- $denied | compact | uniq | join "," -}}
{{- end -}}

{{/* The budget of a PodDisruptionBudget from its values (minAvailable or maxUnavailable, at most
one; neither = maxUnavailable 1):
include "datapipelines.pdbBudget" (dict "pdb" .Values.api.podDisruptionBudget "path" "api.podDisruptionBudget"). */}}
{{- define "datapipelines.pdbBudget" -}}
{{- $hasMin := not (kindIs "invalid" .pdb.minAvailable) -}}
{{- $hasMax := not (kindIs "invalid" .pdb.maxUnavailable) -}}
{{- if and $hasMin $hasMax -}}
{{- fail (printf "%s: set minAvailable or maxUnavailable, not both" .path) -}}
{{- end -}}
{{- if $hasMin -}}
minAvailable: {{ kindIs "string" .pdb.minAvailable | ternary (.pdb.minAvailable | quote) (.pdb.minAvailable | int) }}
{{- else if $hasMax -}}
maxUnavailable: {{ kindIs "string" .pdb.maxUnavailable | ternary (.pdb.maxUnavailable | quote) (.pdb.maxUnavailable | int) }}
{{- else -}}
maxUnavailable: 1
{{- end -}}
{{- end -}}

{{/* ResourceRequirements-shaped values ({requests: {...}, limits: {...}}) as JSON with every
quantity a string: `--set runner.resources.limits.cpu=2` (or `cpu: 2` in a values file) is a
number to Helm, and the operator's settings take quantities as strings only. */}}
{{- define "datapipelines.quantitiesJson" -}}
{{- $out := dict -}}
{{- range $part, $values := (. | default dict) -}}
{{- $quantities := dict -}}
{{- range $key, $value := ($values | default dict) -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $_ := set $quantities $key (toString $value) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $out $part $quantities -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
