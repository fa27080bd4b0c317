package telemetry

import (
	"strings"
	"testing"

	statspb "istio.io/api/envoy/extensions/stats"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// describe is a PluginConfig's overrides in a short form: name:drop or name:-tag,+tag=expr.
func describe(pc *statspb.PluginConfig) string {
	if pc == nil {
		return "off"
	}
	var out []string
	for _, m := range pc.GetMetrics() {
		s := m.GetName() + ":"
		if m.GetDrop() {
			s += "drop"
		}
		for _, t := range m.GetTagsToRemove() {
			s += "-" + t
		}
		for k, v := range m.GetDimensions() {
			s += "+" + k + "=" + v
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestMetricsResolution(t *testing.T) {
	root := `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: mesh-system}
spec:
  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT}
      tagOverrides: {request_host: {value: request.host}, source_principal: {operation: REMOVE}}
    - match: {metric: REQUEST_SIZE, mode: SERVER}
      disabled: true
`
	ns := `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: shop}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: ALL_METRICS, mode: CLIENT}
      disabled: true
    - match: {metric: REQUEST_SIZE}
      disabled: false
    - match: {customMetric: my_metric}
      disabled: true
    - match: {metric: REQUEST_COUNT}
      tagOverrides: {bad: {value: "request.host +"}}
`
	p := New(&meshconfig.MeshConfig{}, "mesh-system", telemetries(t, root, ns))
	dflt, shop := Workload{Namespace: "default"}, Workload{Namespace: "shop"}
	for _, c := range []struct {
		w    Workload
		c    Class
		want string
	}{
		{dflt, Outbound, "requests_total:-source_principal+request_host=request.host"},
		{dflt, Inbound, "requests_total:-source_principal+request_host=request.host request_bytes:drop"},
		// CLIENT disables all on the outbound side; a later override turns request_bytes back on.
		{shop, Outbound, "requests_total:drop request_duration_milliseconds:drop response_bytes:drop tcp_connections_opened_total:drop tcp_connections_closed_total:drop tcp_sent_bytes_total:drop tcp_received_bytes_total:drop"},
		{shop, Inbound, "requests_total:-source_principal+request_host=request.host"},
	} {
		if got := describe(p.Metrics(c.w, c.c).Config); got != c.want {
			t.Errorf("%s class %d:\n got %s\nwant %s", c.w.Namespace, c.c, got, c.want)
		}
	}
	probs := map[string]bool{}
	for _, pr := range p.Problems() {
		probs[pr.Field] = true
	}
	for _, f := range []string{"spec.metrics[0].overrides[2].match.customMetric", "spec.metrics[0].overrides[3].tagOverrides[bad].value"} {
		if !probs[f] {
			t.Errorf("no problem reported for %s (got %v)", f, probs)
		}
	}
	if g := p.Metrics(dflt, Gateway).Config; !g.GetDisableHostHeaderFallback() {
		t.Error("gateways must not take the service from the Host header")
	}
}

// Metrics are off where the providers in force are not Prometheus ones.
func TestMetricsProviders(t *testing.T) {
	p := New(&meshconfig.MeshConfig{DefaultProviders: &meshconfig.MeshConfig_DefaultProviders{Metrics: []string{"stackdriver"}}}, "mesh-system", nil)
	if m := p.Metrics(Workload{Namespace: "default"}, Inbound); m.Config != nil {
		t.Errorf("defaultProviders.metrics [stackdriver]: %v, want off", describe(m.Config))
	}
	p = New(&meshconfig.MeshConfig{}, "mesh-system", nil)
	if m := p.Metrics(Workload{Namespace: "default"}, Inbound); m.Config == nil || len(m.Config.Metrics) != 0 {
		t.Errorf("no Telemetry: %v, want every metric with its standard labels", describe(m.Config))
	}
}
