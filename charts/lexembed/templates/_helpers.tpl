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
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
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

{{/* Environment of every lexembed container. */}}
{{- define "lexembed.env" -}}
- name: LEXEMBED_MODEL
  value: {{ .Values.model.path | quote }}
- name: ORT_DYLIB_PATH
  value: {{ .Values.onnxruntime.libraryPath | quote }}
- name: LEXEMBED_LOG_JSON
  value: {{ .Values.logJson | quote }}
- name: LEXEMBED_PROVIDER
  value: {{ ternary .Values.gpu.provider "cpu" .Values.gpu.enabled | quote }}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{- define "lexembed.envFrom" -}}
{{- with (include "lexembed.secretName" .) }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{/* Mounts: the pipeline spec and the model. */}}
{{- define "lexembed.mounts" -}}
- name: pipeline
  mountPath: /etc/lexembed
  readOnly: true
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
{{- if eq .Values.model.source "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ .Values.model.pvc.claimName }}
    readOnly: true
{{- else if eq .Values.model.source "initContainer" }}
- name: model
  emptyDir: {}
{{- end }}
{{- end -}}

{{- define "lexembed.initContainers" -}}
{{- if eq .Values.model.source "initContainer" }}
initContainers:
  - name: fetch-model
    image: {{ .Values.model.initContainer.image }}
    command: {{ toJson .Values.model.initContainer.command }}
    volumeMounts:
      - name: model
        mountPath: {{ .Values.model.path }}
{{- end }}
{{- end -}}

{{/* Resources, with the GPU limit when gpu.enabled. */}}
{{- define "lexembed.resources" -}}
{{- $res := deepCopy .resources -}}
{{- if .root.Values.gpu.enabled -}}
{{- $limits := (get $res "limits") | default dict -}}
{{- $_ := set $limits .root.Values.gpu.resourceName (.root.Values.gpu.count | toString) -}}
{{- $_ := set $res "limits" $limits -}}
{{- end -}}
{{ toYaml $res }}
{{- end -}}

{{- define "lexembed.scheduling" -}}
{{- $ns := merge (dict) .Values.nodeSelector (ternary .Values.gpu.nodeSelector dict .Values.gpu.enabled) -}}
{{- with $ns }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tol := concat .Values.tolerations (ternary .Values.gpu.tolerations list .Values.gpu.enabled) -}}
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
