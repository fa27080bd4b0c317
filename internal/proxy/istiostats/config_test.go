package istiostats

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	statspb "istio.io/api/envoy/extensions/stats"
)

func pack(t *testing.T, pc *statspb.PluginConfig) *anypb.Any {
	t.Helper()
	a, err := anypb.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestOverrides(t *testing.T) {
	cfg, err := compile(pack(t, &statspb.PluginConfig{Metrics: []*statspb.MetricConfig{
		{Name: RequestBytes, Drop: true},
		{TagsToRemove: []string{"source_principal"}},
		{Name: RequestsTotal, Dimensions: map[string]string{"request_host": "request.host", "response_code": "'any'"}},
	}}), "f")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.metrics[RequestBytes] != nil || cfg.metrics[ResponseBytes] == nil {
		t.Errorf("drop: request_bytes %v response_bytes %v", cfg.metrics[RequestBytes], cfg.metrics[ResponseBytes])
	}
	var std [25]string
	for i, l := range Labels {
		std[i] = "std-" + l
	}
	vals := evalAll(cfg, stubAttrs{})
	got := map[string]string{}
	ls := cfg.labels(RequestsTotal, &std, vals)
	for i := 0; i < len(ls); i += 2 {
		got[ls[i]] = ls[i+1]
	}
	if _, ok := got["source_principal"]; ok {
		t.Error("source_principal not removed")
	}
	if got["request_host"] != "reviews" || got["response_code"] != "any" || got["reporter"] != "std-reporter" {
		t.Errorf("labels %v", got)
	}
	// TCP metrics never carry response labels.
	tcp := strings.Join(cfg.labels(TCPOpened, &std, vals), ",")
	if strings.Contains(tcp, "response_code") || strings.Contains(tcp, "grpc_response_status") || strings.Contains(tcp, "source_principal") {
		t.Errorf("tcp labels %s", tcp)
	}
}

type stubAttrs struct{}

func (stubAttrs) Field(name string) (any, bool) {
	if name == "request" {
		return stubRequest{}, true
	}
	return nil, false
}

type stubRequest struct{}

func (stubRequest) Field(name string) (any, bool) {
	if name == "host" {
		return "reviews", true
	}
	return nil, false
}

func TestCompileRefuses(t *testing.T) {
	for name, pc := range map[string]*statspb.PluginConfig{
		"unknown metric": {Metrics: []*statspb.MetricConfig{{Name: "bogus"}}},
		"bad CEL":        {Metrics: []*statspb.MetricConfig{{Dimensions: map[string]string{"x": "request.host +"}}}},
		"match":          {Metrics: []*statspb.MetricConfig{{Match: "true"}}},
		"definitions":    {Definitions: []*statspb.MetricDefinition{{Name: "custom"}}},
	} {
		if _, err := compile(pack(t, pc), "f"); err == nil || !strings.HasPrefix(err.Error(), "f.") {
			t.Errorf("%s: err %v, want one naming the field", name, err)
		}
	}
}

func TestHostService(t *testing.T) {
	for in, want := range map[string]service{
		"reviews.default.svc.cluster.local:9080": {"reviews.default.svc.cluster.local", "reviews", "default"},
		"example.com":                            {"example.com", "example.com", ""},
	} {
		if got := hostService(in); got != want {
			t.Errorf("hostService(%q) = %+v, want %+v", in, got, want)
		}
	}
	if s, ok := clusterService(nil, "outbound|9080|v1|reviews.default.svc.cluster.local"); !ok || s.name != "reviews" || s.namespace != "default" {
		t.Errorf("outbound cluster name: %+v %v", s, ok)
	}
	if _, ok := clusterService(nil, "inbound|9080||"); ok {
		t.Error("an inbound cluster without metadata names no service")
	}
}
