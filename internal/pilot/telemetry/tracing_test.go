package telemetry

import (
	"strings"
	"testing"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"

	"mesh.dev/mesh/internal/proxy/tracing"
)

// A zipkin provider becomes Envoy's Zipkin tracer as istiod writes it,
// which mesh-proxy compiles.
func TestZipkinProvider(t *testing.T) {
	for _, tc := range []struct {
		name, provider string
		path           string
		bits128        bool
		maxTag         uint32
		b3w3c          bool
	}{
		{"defaults", `{service: zipkin.istio-system.svc.cluster.local, port: 9411}`, "/api/v2/spans", true, 0, false},
		{"all set", `{service: observability/jaeger-collector.observability.svc.cluster.local, port: 9412, path: /zipkin/spans, maxTagLength: 99, enable64bitTraceId: true, traceContextOption: USE_B3_WITH_W3C_PROPAGATION}`,
			"/zipkin/spans", false, 99, true},
	} {
		p := mustMesh(t, "extensionProviders: [{name: zk, zipkin: "+tc.provider+"}]\ndefaultProviders: {tracing: [zk]}\n")
		tr := p.Tracing(Workload{Namespace: "default", Labels: map[string]string{"app": "reviews"}}, Outbound)
		zc := &tracev3.ZipkinConfig{}
		if tr.HCM.GetProvider().GetName() != "envoy.tracers.zipkin" || tr.HCM.GetProvider().GetTypedConfig().UnmarshalTo(zc) != nil {
			t.Fatalf("%s: provider %v, want envoy.tracers.zipkin", tc.name, tr.HCM.GetProvider())
		}
		host := "zipkin.istio-system.svc.cluster.local"
		cluster := "outbound|9411||" + host
		if tc.name == "all set" {
			host = "jaeger-collector.observability.svc.cluster.local"
			cluster = "outbound|9412||" + host
		}
		if zc.GetCollectorCluster() != cluster || zc.GetCollectorHostname() != host || zc.GetCollectorEndpoint() != tc.path ||
			zc.GetCollectorEndpointVersion() != tracev3.ZipkinConfig_HTTP_JSON || zc.GetTraceId_128Bit() != tc.bits128 ||
			zc.GetSharedSpanContext() == nil || zc.GetSharedSpanContext().GetValue() ||
			(zc.GetTraceContextOption() == tracev3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION) != tc.b3w3c {
			t.Errorf("%s: ZipkinConfig %v", tc.name, zc)
		}
		if got := tr.HCM.GetMaxPathTagLength().GetValue(); got != tc.maxTag {
			t.Errorf("%s: max_path_tag_length %d, want %d", tc.name, got, tc.maxTag)
		}
		if _, err := tracing.Compile(tr.HCM, "tracing", "outbound", t, "reviews.default", nil); err != nil {
			t.Errorf("%s: mesh-proxy refuses pilot's zipkin tracing: %v", tc.name, err)
		}
	}
	p := mustMesh(t, "extensionProviders: [{name: zk, zipkin: {service: z.x.svc, port: 9411, timeout: 2s, headers: [{name: a, value: b}]}}]")
	var all []string
	for _, pr := range p.Problems() {
		all = append(all, pr.String())
	}
	if s := strings.Join(all, "\n"); !strings.Contains(s, "extensionProviders[0] (zk).zipkin: timeout and headers are not carried out") {
		t.Errorf("problems lack the zipkin timeout and headers:\n%s", s)
	}
}
