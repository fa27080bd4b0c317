package telemetry

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/proxy/accesslog"
)

func mustMesh(t *testing.T, y string) *Policy {
	t.Helper()
	mc, err := ParseMesh([]byte(y), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return New(mc, "mesh-system", nil)
}

func telemetries(t *testing.T, docs ...string) []*telemetryv1.Telemetry {
	t.Helper()
	var out []*telemetryv1.Telemetry
	for _, d := range docs {
		o := &telemetryv1.Telemetry{}
		if err := yaml.UnmarshalStrict([]byte(d), o); err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

// logged describes each access log as path, format kind and filter.
func logged(t *testing.T, als []*accesslogv3.AccessLog) []string {
	t.Helper()
	var out []string
	for _, al := range als {
		fl := &filev3.FileAccessLog{}
		if err := al.GetTypedConfig().UnmarshalTo(fl); err != nil {
			t.Fatal(err)
		}
		// mesh-proxy must accept what pilot writes.
		if _, err := accesslog.Compile(al, "access_log"); err != nil {
			t.Fatalf("mesh-proxy refuses pilot's access log: %v", err)
		}
		lf := fl.GetLogFormat()
		desc := fl.GetPath() + " "
		switch {
		case lf.GetJsonFormat() != nil:
			desc += "json"
			if lf.GetJsonFormat().Fields["upstream_cluster"] != nil {
				desc += "(istio)"
			}
		case lf.GetTextFormatSource().GetInlineString() == accesslog.IstioDefault:
			desc += "text(istio)"
		default:
			desc += "text:" + strings.TrimSuffix(lf.GetTextFormatSource().GetInlineString(), "\n")
		}
		if ef := al.GetFilter().GetExtensionFilter(); ef != nil {
			cel := &celv3.ExpressionFilter{}
			if err := ef.GetTypedConfig().UnmarshalTo(cel); err != nil {
				t.Fatal(err)
			}
			desc += " if " + cel.GetExpression()
		}
		out = append(out, desc)
	}
	return out
}

func TestMeshConfigAccessLog(t *testing.T) {
	w := Workload{Namespace: "default", Labels: map[string]string{"app": "reviews"}}
	for _, tc := range []struct{ name, mesh, want string }{
		{"off by default", ``, ""},
		{"text default", `accessLogFile: /dev/stdout`, "/dev/stdout text(istio)"},
		{"text explicit", "accessLogFile: /dev/stdout\naccessLogEncoding: TEXT", "/dev/stdout text(istio)"},
		{"json default", "accessLogFile: /tmp/a.log\naccessLogEncoding: JSON", "/tmp/a.log json(istio)"},
		{"json custom", "accessLogFile: /tmp/a.log\naccessLogEncoding: JSON\naccessLogFormat: '{\"code\":\"%RESPONSE_CODE%\"}'", "/tmp/a.log json"},
		{"text custom", "accessLogFile: /dev/stdout\naccessLogFormat: '%RESPONSE_FLAGS% %UPSTREAM_HOST%'", "/dev/stdout text:%RESPONSE_FLAGS% %UPSTREAM_HOST%"},
		{"default providers win over accessLogFile", "accessLogFile: /tmp/a.log\ndefaultProviders: {accessLogging: [envoy]}", "/dev/stdout text(istio)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustMesh(t, tc.mesh)
			for _, c := range []Class{Inbound, Outbound, Gateway} {
				if got := strings.Join(logged(t, p.AccessLogs(w, c).Logs), ", "); got != tc.want {
					t.Errorf("class %d: %q, want %q", c, got, tc.want)
				}
			}
		})
	}
}

func TestMeshConfigErrors(t *testing.T) {
	for _, tc := range []struct{ mesh, want string }{
		{"accessLogFile: /dev/stdout\naccessLogFormat: '%NOT_AN_OPERATOR%'", "accessLogFormat"},
		{"accessLogFile: /dev/stdout\naccessLogEncoding: XML", "accessLogEncoding"},
		{"accessLogFile: /dev/stdout\naccessLogEncoding: JSON\naccessLogFormat: 'code=%RESPONSE_CODE%'", "JSON object"},
		{"acessLogFile: /dev/stdout", "acessLogFile"},
		{"extensionProviders: [{name: x, envoyFileAccessLog: {}}]", "extensionProviders[0].envoyFileAccessLog.path"},
		{"extensionProviders: [{name: x, envoyFileAccessLog: {path: /a}}, {name: x, envoyFileAccessLog: {path: /b}}]", "defined twice"},
		{"extensionProviders: [{name: otel, opentelemetry: {port: 4317}}]", "service and port"},
	} {
		_, err := ParseMesh([]byte(tc.mesh), "mesh.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "mesh.yaml") {
			t.Errorf("%q: error %v, want one naming mesh.yaml and %q", tc.mesh, err, tc.want)
		}
	}
}

// TestProfilesMeshConfigParse: the mesh config every profile renders is
// read by pilot without error.
func TestProfilesMeshConfigParse(t *testing.T) {
	goldens, _ := filepath.Glob("../../render/testdata/*.golden.yaml")
	if len(goldens) == 0 {
		t.Fatal("no rendered profiles found")
	}
	block := regexp.MustCompile(`(?m)^  mesh: \|-\n((?:    .*\n)+)`)
	found := 0
	for _, g := range goldens {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		m := block.FindSubmatch(data)
		if m == nil {
			continue
		}
		found++
		y := regexp.MustCompile(`(?m)^    `).ReplaceAll(m[1], nil)
		if _, err := ParseMesh(y, g); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	if found < 3 {
		t.Errorf("found the mesh config of %d rendered profiles, want default, demo and minimal", found)
	}
}

func TestTelemetryAccessLogging(t *testing.T) {
	mesh := `
accessLogFile: /tmp/mesh.log
extensionProviders:
- name: json
  envoyFileAccessLog:
    path: /tmp/json.log
    logFormat: {labels: {code: "%RESPONSE_CODE%", flags: "%RESPONSE_FLAGS%"}}
- name: otel-logs
  envoyOtelAls: {service: otel.x.svc, port: 4317}
`
	reviews := Workload{Namespace: "default", Labels: map[string]string{"app": "reviews"}}
	other := Workload{Namespace: "other", Labels: map[string]string{"app": "ratings"}}
	type want struct{ in, out, gw string }
	for _, tc := range []struct {
		name string
		tels []string
		w    Workload
		want want
	}{
		{"no Telemetry: the mesh config's log", nil, reviews,
			want{"/tmp/mesh.log text(istio)", "/tmp/mesh.log text(istio)", "/tmp/mesh.log text(istio)"}},
		{"root Telemetry naming a provider replaces it everywhere", []string{`
metadata: {name: mesh, namespace: mesh-system}
spec: {accessLogging: [{providers: [{name: json}]}]}`}, other,
			want{"/tmp/json.log json", "/tmp/json.log json", "/tmp/json.log json"}},
		{"disabled for one workload", []string{`
metadata: {name: mesh, namespace: mesh-system}
spec: {accessLogging: [{providers: [{name: envoy}]}]}`, `
metadata: {name: quiet, namespace: default}
spec: {selector: {matchLabels: {app: reviews}}, accessLogging: [{providers: [{name: envoy}], disabled: true}]}`}, reviews,
			want{"", "", ""}},
		{"disabled with no provider turns off the mesh config's log", []string{`
metadata: {name: quiet, namespace: default}
spec: {accessLogging: [{disabled: true}]}`}, reviews,
			want{"", "", ""}},
		{"other namespaces keep the mesh default", []string{`
metadata: {name: quiet, namespace: default}
spec: {accessLogging: [{disabled: true}]}`}, other,
			want{"/tmp/mesh.log text(istio)", "/tmp/mesh.log text(istio)", "/tmp/mesh.log text(istio)"}},
		{"server mode only", []string{`
metadata: {name: server, namespace: default}
spec: {accessLogging: [{providers: [{name: envoy}], match: {mode: SERVER}}, {providers: [{name: envoy}], match: {mode: CLIENT}, disabled: true}]}`}, reviews,
			want{"/dev/stdout text(istio)", "", ""}},
		{"client mode covers gateways", []string{`
metadata: {name: client, namespace: default}
spec: {accessLogging: [{providers: [{name: json}], match: {mode: CLIENT}, filter: {expression: "response.code >= 400"}}]}`}, reviews,
			want{"/tmp/mesh.log text(istio)", "/tmp/json.log json if response.code >= 400", "/tmp/json.log json if response.code >= 400"}},
		{"workload overrides namespace filter", []string{`
metadata: {name: ns, namespace: default}
spec: {accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 500"}}]}`, `
metadata: {name: wl, namespace: default}
spec: {selector: {matchLabels: {app: reviews}}, accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400"}}]}`}, reviews,
			want{"/dev/stdout text(istio) if response.code >= 400", "/dev/stdout text(istio) if response.code >= 400", "/dev/stdout text(istio) if response.code >= 400"}},
		{"a provider that is not a file logger writes nothing", []string{`
metadata: {name: otel, namespace: default}
spec: {accessLogging: [{providers: [{name: otel-logs}]}]}`}, reviews,
			want{"", "", ""}},
		{"an unparsable filter logs nothing", []string{`
metadata: {name: bad, namespace: default}
spec: {accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >="}}]}`}, reviews,
			want{"", "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc, err := ParseMesh([]byte(mesh), "mesh.yaml")
			if err != nil {
				t.Fatal(err)
			}
			p := New(mc, "mesh-system", telemetries(t, tc.tels...))
			got := want{
				strings.Join(logged(t, p.AccessLogs(tc.w, Inbound).Logs), ", "),
				strings.Join(logged(t, p.AccessLogs(tc.w, Outbound).Logs), ", "),
				strings.Join(logged(t, p.AccessLogs(tc.w, Gateway).Logs), ", "),
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestProblemsName(t *testing.T) {
	mc, err := ParseMesh([]byte(`extensionProviders: [{name: otel-logs, envoyOtelAls: {service: otel.x.svc, port: 4317}}]`), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := New(mc, "mesh-system", telemetries(t, `
metadata: {name: t, namespace: default}
spec: {accessLogging: [{providers: [{name: otel-logs}, {name: nope}], filter: {expression: "1 +"}}]}`, `
metadata: {name: gw, namespace: default}
spec: {targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}], accessLogging: [{}]}`))
	var got []string
	for _, pr := range p.Problems() {
		got = append(got, pr.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"mesh config extensionProviders[0] (otel-logs): provider type not supported",
		"Telemetry default/t spec.accessLogging[0].providers[0]: provider \"otel-logs\" is not an envoyFileAccessLog provider",
		"Telemetry default/t spec.accessLogging[0].providers[1]: no extension provider \"nope\"",
		"Telemetry default/t spec.accessLogging[0].filter.expression:",
		"Telemetry default/gw spec.targetRefs: not supported",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
}
