{{- define "ai-cost-exporter.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ai-cost-exporter.selectorLabels" -}}
app.kubernetes.io/name: ai-cost-exporter
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ai-cost-exporter.labels" -}}
{{ include "ai-cost-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
