{{- define "gateway.namespace" -}}
{{ .Values.gateway.namespace | default .Values.global.namespace }}
{{- end }}

{{- define "gateway.rev" -}}
{{ .Values.global.revision | default "default" }}
{{- end }}

{{/* Labels every object of this chart carries; install prunes by them. */}}
{{- define "gateway.labels" -}}
app.kubernetes.io/part-of: mesh
app.kubernetes.io/managed-by: mesh
install.mesh.io/component: {{ .Values.gateway.type }}-gateway.{{ .Values.gateway.name }}
mesh.io/rev: {{ include "gateway.rev" . | quote }}
{{- end }}

{{/* Labels that select the gateway pods; Istio Gateway resources select on "istio". */}}
{{- define "gateway.selector" -}}
app: {{ .Values.gateway.name }}
istio: {{ .Values.gateway.type }}gateway
{{- range $k, $v := .Values.gateway.labels }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}
