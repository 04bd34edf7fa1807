{{/* Names and labels, as `helm create` makes them. */}}
{{- define "warship.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "warship.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "warship.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "warship.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "warship.selectorLabels" -}}
app.kubernetes.io/name: {{ include "warship.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "warship.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "warship.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "warship.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "warship.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: the account warship runs as, when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "warship.secretName" -}}
{{- default (include "warship.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* repository:tag, or repository:tag@digest when a digest is given. */}}
{{- define "warship.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The admin's token: given in values, else the one the installed Secret holds (so upgrades keep
it), else a new random one. Kept in .Values once made, so the Secret and the sha256 in
platform.toml agree within one render.
*/}}
{{- define "warship.adminToken" -}}
{{- if not .Values.users.admin._token }}
{{- $token := .Values.users.admin.token }}
{{- if not $token }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "warship.fullname" .) }}
{{- if and $existing $existing.data (index $existing.data "admin-token") }}
{{- $token = index $existing.data "admin-token" | b64dec }}
{{- else }}
{{- $token = printf "wsp_%s" (randAlphaNum 48) }}
{{- end }}
{{- end }}
{{- $_ := set .Values.users.admin "_token" $token }}
{{- end }}
{{- .Values.users.admin._token }}
{{- end }}

{{- define "warship.adminTokenSha256" -}}
{{- if .Values.secrets.existingSecret }}
{{- required "users.admin.tokenSha256: with secrets.existingSecret the chart cannot read the admin's token, so give its sha256" .Values.users.admin.tokenSha256 }}
{{- else }}
{{- include "warship.adminToken" . | sha256sum }}
{{- end }}
{{- end }}

{{/* Refuses values that cannot work, before anything reaches the cluster. */}}
{{- define "warship.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (eq .Values.store.backend "embedded") }}
{{- fail "replicaCount > 1 needs store.backend = \"etcd\": the embedded store is one pod's own file, so each host would see different users, envs and deploys" }}
{{- end }}
{{- if not (has .Values.store.backend (list "embedded" "etcd")) }}
{{- fail (printf "store.backend is \"embedded\" or \"etcd\", not %q" .Values.store.backend) }}
{{- end }}
{{- if not (has .Values.storage.backend (list "local" "s3")) }}
{{- fail (printf "storage.backend is \"local\" or \"s3\", not %q" .Values.storage.backend) }}
{{- end }}
{{- if and (eq .Values.storage.backend "s3") (not .Values.storage.s3.bucket) }}
{{- fail "storage.backend = \"s3\" needs storage.s3.bucket" }}
{{- end }}
{{- if and (eq .Values.store.backend "etcd") (empty .Values.store.etcd.endpoints) }}
{{- fail "store.backend = \"etcd\" needs store.etcd.endpoints" }}
{{- end }}
{{- end }}
