{{/* Names, labels and the pieces every workload shares (env, volumes, scheduling). */}}
{{- define "lexembed.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "lexembed.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lexembed.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lexembed.image" -}}
{{- if .Values.image.digest -}}{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- end -}}

{{/* Labels of every pod: the selector's, the component's, podLabels. */}}
{{- define "lexembed.podLabels" -}}
{{ include "lexembed.selector" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .root.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level security: Pod Security "restricted". */}}
{{- define "lexembed.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{- define "lexembed.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{- define "lexembed.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}{{ .Values.serviceAccount.name | default (include "lexembed.fullname" .) }}
{{- else -}}{{ .Values.serviceAccount.name | default "default" }}{{- end -}}
{{- end -}}

{{- define "lexembed.configMap" -}}
{{ .Values.pipeline.existingConfigMap | default (printf "%s-pipeline" (include "lexembed.fullname" .)) }}
{{- end -}}

{{- define "lexembed.secretName" -}}
{{- if .Values.secretEnv.existingSecret -}}{{ .Values.secretEnv.existingSecret }}
{{- else if .Values.secretEnv.create -}}{{ printf "%s-env" (include "lexembed.fullname" .) }}{{- end -}}
{{- end -}}

{{/* Environment of every lexembed container (provider from gpu.enabled). */}}
{{- define "lexembed.env" -}}
{{- include "lexembed.envOn" (dict "root" . "gpu" .Values.gpu.enabled) -}}
{{- end -}}

{{/* Environment of a lexembed container; `gpu` picks the provider. */}}
{{- define "lexembed.envOn" -}}
{{- $gpu := .gpu -}}
{{- with .root -}}
- name: LEXEMBED_MODEL
  value: {{ .Values.model.path | quote }}
- name: ORT_DYLIB_PATH
  value: {{ .Values.onnxruntime.libraryPath | quote }}
- name: LEXEMBED_LOG_JSON
  value: {{ .Values.logJson | quote }}
- name: LEXEMBED_PROVIDER
  value: {{ ternary .Values.gpu.provider "cpu" $gpu | quote }}
- name: LEXEMBED_HOME
  value: /var/lib/lexembed
- name: TMPDIR
  value: /tmp
- name: CUDA_CACHE_PATH
  value: /var/lib/lexembed/cuda-cache
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "lexembed.envFrom" -}}
{{- with (include "lexembed.secretName" .) }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{/* Mounts: the pipeline spec, the model, the writable scratch directories, extraVolumeMounts. */}}
{{- define "lexembed.mounts" -}}
- name: pipeline
  mountPath: /etc/lexembed
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /var/lib/lexembed
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- if ne .Values.model.source "image" }}
- name: model
  mountPath: {{ .Values.model.path }}
  readOnly: true
  {{- if and (eq .Values.model.source "pvc") .Values.model.pvc.subPath }}
  subPath: {{ .Values.model.pvc.subPath }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "lexembed.volumes" -}}
- name: pipeline
  configMap:
    name: {{ include "lexembed.configMap" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: home
  emptyDir:
    sizeLimit: {{ .Values.scratch.homeSizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- if eq .Values.model.source "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ .Values.model.pvc.claimName }}
    readOnly: true
{{- else if eq .Values.model.source "initContainer" }}
- name: model
  emptyDir:
    sizeLimit: {{ .Values.model.initContainer.sizeLimit }}
{{- end }}
{{- end -}}

{{- define "lexembed.initContainers" -}}
{{- if eq .Values.model.source "initContainer" }}
initContainers:
  - name: fetch-model
    image: {{ .Values.model.initContainer.image }}
    command: {{ toJson .Values.model.initContainer.command }}
    {{- include "lexembed.envFrom" . | nindent 4 }}
    env:
      {{- include "lexembed.env" . | nindent 6 }}
    resources:
      requests: {cpu: 100m, memory: 256Mi}
      limits: {memory: 1Gi}
    {{- include "lexembed.containerSecurity" . | nindent 4 }}
    volumeMounts:
      - name: model
        mountPath: {{ .Values.model.path }}
      - name: tmp
        mountPath: /tmp
{{- end }}
{{- end -}}

{{/* Resources, with the GPU limit when gpu.enabled (or `gpu`, when given). */}}
{{- define "lexembed.resources" -}}
{{- $res := deepCopy .resources -}}
{{- $gpu := ternary .gpu .root.Values.gpu.enabled (hasKey . "gpu") -}}
{{- if $gpu -}}
{{- $limits := (get $res "limits") | default dict -}}
{{- $_ := set $limits .root.Values.gpu.resourceName (.root.Values.gpu.count | toString) -}}
{{- $_ := set $res "limits" $limits -}}
{{- end -}}
{{ toYaml $res }}
{{- end -}}

{{/* Scheduling of a workload that embeds: on GPU nodes when gpu.enabled. */}}
{{- define "lexembed.scheduling" -}}
{{- include "lexembed.schedulingOn" (dict "root" . "gpu" .Values.gpu.enabled) -}}
{{- end -}}

{{/* Scheduling; `gpu` adds the GPU node selector and tolerations (not for jobs that do not embed). */}}
{{- define "lexembed.schedulingOn" -}}
{{- $gpu := .gpu -}}
{{- with .root -}}
{{- $ns := merge (dict) .Values.nodeSelector (ternary .Values.gpu.nodeSelector dict $gpu) -}}
{{- with $ns }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tol := concat .Values.tolerations (ternary .Values.gpu.tolerations list $gpu) -}}
{{- with $tol }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* Batch jobs' metrics textfile (node_exporter's textfile collector reads metrics.textfileDir on the node). */}}
{{- define "lexembed.textfileArgs" -}}
{{- if .root.Values.metrics.textfileDir -}}
, "--metrics-file", {{ printf "/var/lib/lexembed/metrics/%s-%s.prom" (include "lexembed.fullname" .root) .name | quote }}
{{- end -}}
{{- end -}}

{{- define "lexembed.textfileMount" -}}
{{- if .Values.metrics.textfileDir }}
- name: metrics-textfile
  mountPath: /var/lib/lexembed/metrics
{{- end }}
{{- end -}}

{{- define "lexembed.textfileVolume" -}}
{{- if .Values.metrics.textfileDir }}
- name: metrics-textfile
  hostPath:
    path: {{ .Values.metrics.textfileDir }}
    type: DirectoryOrCreate
{{- end }}
{{- end -}}
