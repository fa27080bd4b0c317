{{/* The revision suffix of revisioned names: "" or "-<revision>". */}}
{{- define "base.revSuffix" -}}
{{- if .Values.global.revision }}-{{ .Values.global.revision }}{{ end -}}
{{- end }}

{{/* Labels every object of this chart carries; install prunes by them. */}}
{{- define "base.labels" -}}
app.kubernetes.io/part-of: mesh
app.kubernetes.io/managed-by: mesh
install.mesh.io/component: base
mesh.io/rev: {{ .Values.global.revision | default "default" | quote }}
{{- end }}
