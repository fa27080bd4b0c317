package tracing

import (
	"context"
	"strings"
	"testing"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func zipkinHCM(t *testing.T, zc *tracev3.ZipkinConfig) *hcmv3.HttpConnectionManager_Tracing {
	t.Helper()
	a, err := anypb.New(zc)
	if err != nil {
		t.Fatal(err)
	}
	return &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin",
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: a}}}
}

// What mesh-proxy cannot do as Envoy would is refused, naming the field.
func TestZipkinConfigRefusals(t *testing.T) {
	ok := func() *tracev3.ZipkinConfig {
		return &tracev3.ZipkinConfig{CollectorCluster: "outbound|9411||zipkin", CollectorEndpoint: "/api/v2/spans",
			CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON, SharedSpanContext: wrapperspb.Bool(false), TraceId_128Bit: true}
	}
	if _, err := Compile(zipkinHCM(t, ok()), "tracing", "outbound", t, "svc.ns", nil); err != nil {
		t.Fatalf("Istio's zipkin config: %v", err)
	}
	for _, tc := range []struct {
		edit func(*tracev3.ZipkinConfig)
		want string
	}{
		{func(z *tracev3.ZipkinConfig) { z.SharedSpanContext = nil }, "shared_span_context: only false"},
		{func(z *tracev3.ZipkinConfig) { z.CollectorEndpointVersion = tracev3.ZipkinConfig_HTTP_PROTO }, "collector_endpoint_version: HTTP_PROTO is not supported"},
		{func(z *tracev3.ZipkinConfig) { z.CollectorCluster = "" }, "collector_cluster: the Zipkin collector's cluster is required"},
		{func(z *tracev3.ZipkinConfig) { z.CollectorEndpoint = "api" }, "collector_endpoint"},
		{func(z *tracev3.ZipkinConfig) { z.SplitSpansForRequest = true }, "split_spans_for_request"},
	} {
		z := ok()
		tc.edit(z)
		_, err := Compile(zipkinHCM(t, z), "tracing", "outbound", t, "svc.ns", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "tracing.provider.typed_config") {
			t.Errorf("%v: %v, want an error on tracing.provider.typed_config saying %q", z, err, tc.want)
		}
	}
}

// trace_id_128bit false: new traces get 64-bit ids, as Envoy makes them.
func TestIDs64(t *testing.T) {
	for i := 0; i < 100; i++ {
		tid, sid := ids64{}.NewIDs(context.Background())
		if !tid.IsValid() || !sid.IsValid() || tid.String()[:16] != "0000000000000000" {
			t.Fatalf("ids %s %s: want a valid 64-bit trace id (high half zero)", tid, sid)
		}
	}
}
