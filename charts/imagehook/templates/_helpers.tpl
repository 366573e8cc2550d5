{{- define "imagehook.name" -}}imagehook{{- end -}}
{{- define "imagehook.fullname" -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "imagehook.labels" -}}
app.kubernetes.io/name: imagehook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "imagehook.selector" -}}
app.kubernetes.io/name: imagehook
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "imagehook.serviceAccount" -}}{{ default (include "imagehook.fullname" .) .Values.serviceAccount.name }}{{- end -}}
