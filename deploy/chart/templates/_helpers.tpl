{{/* Labels every object of the release carries. */}}
{{- define "unloop-agent.labels" -}}
app.kubernetes.io/name: unloop-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "unloop-agent.selector" -}}
app.kubernetes.io/name: unloop-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The Secret with the webhook URLs: an existing one, or the chart's when a URL is set. */}}
{{- define "unloop-agent.secret" -}}
{{- if .Values.notify.existingSecret -}}
{{ .Values.notify.existingSecret }}
{{- else if or .Values.notify.webhook .Values.notify.slackWebhook -}}
{{ .Release.Name }}-webhooks
{{- end -}}
{{- end -}}
