{{/* The revision suffix of revisioned names: "" or "-<revision>". */}}
{{- define "pilot.revSuffix" -}}
{{- if .Values.global.revision }}-{{ .Values.global.revision }}{{ end -}}
{{- end }}

{{/* mesh-pilot or mesh-pilot-<revision>: the Deployment, Service and ServiceAccount name. */}}
{{- define "pilot.name" -}}
mesh-pilot{{ include "pilot.revSuffix" . }}
{{- end }}

{{- define "pilot.rev" -}}
{{ .Values.global.revision | default "default" }}
{{- end }}

{{/* Labels every object of this chart carries; install prunes by them. */}}
{{- define "pilot.labels" -}}
app.kubernetes.io/part-of: mesh
app.kubernetes.io/managed-by: mesh
install.mesh.io/component: pilot
mesh.io/rev: {{ include "pilot.rev" . | quote }}
{{- end }}

{{/* Labels that select the pilot pods. */}}
{{- define "pilot.selector" -}}
app: mesh-pilot
mesh.io/rev: {{ include "pilot.rev" . | quote }}
{{- end }}

{{/* The proxy image the injector puts into pods. */}}
{{- define "pilot.proxyImage" -}}
{{ .Values.global.hub }}/{{ .Values.global.proxy.image }}:{{ .Values.global.tag }}
{{- end }}

{{/* The mesh config with the fields pilot must own filled in. */}}
{{- define "pilot.meshConfig" -}}
{{- $mc := deepCopy .Values.meshConfig -}}
{{- $dc := $mc.defaultConfig | default dict -}}
{{- if not $dc.discoveryAddress -}}
{{- $_ := set $dc "discoveryAddress" (include "pilot.discoveryAddress" .) -}}
{{- end -}}
{{- $_ := set $mc "defaultConfig" $dc -}}
{{- if eq (toString $mc.rootNamespace) "mesh-system" -}}
{{- $_ := set $mc "rootNamespace" .Values.global.namespace -}}
{{- end -}}
{{ toYaml $mc }}
{{- end }}

{{/* Where sidecars find pilot's ADS server: its mTLS port, where they also
get their workload certificate from pilot's CA. */}}
{{- define "pilot.discoveryAddress" -}}
{{ include "pilot.name" . }}.{{ .Values.global.namespace }}.svc:15012
{{- end }}
