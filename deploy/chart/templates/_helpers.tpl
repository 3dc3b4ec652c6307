{{- define "turso.fullname" -}}
{{- if contains "turso" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-turso" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "turso.labels" -}}
app.kubernetes.io/name: turso-server
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "turso.selector" -}}
app.kubernetes.io/name: turso-server
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "turso.clusterTLSSecret" -}}
{{- if .Values.cluster.tls.existingSecret -}}{{ .Values.cluster.tls.existingSecret }}{{- else -}}{{ include "turso.fullname" . }}-cluster-tls{{- end -}}
{{- end -}}

{{- define "turso.secretName" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecret }}{{- else -}}{{ include "turso.fullname" . }}{{- end -}}
{{- end -}}
