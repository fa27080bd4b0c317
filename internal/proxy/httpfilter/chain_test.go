package httpfilter_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbaccfg "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/proxy/fault"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/localratelimit"
	"mesh.dev/mesh/internal/proxy/rbac"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func hf(t testing.TB, name string, m proto.Message, mod ...func(*hcmv3.HttpFilter)) *hcmv3.HttpFilter {
	f := &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, m)}}
	for _, fn := range mod {
		fn(f)
	}
	return f
}

func optional(f *hcmv3.HttpFilter) { f.IsOptional = true }
func disabled(f *hcmv3.HttpFilter) { f.Disabled = true }

// Compile refuses what it cannot run, naming the filter, and skips only what Envoy lets it skip.
func TestCompileRefusesByNameUnlessOptional(t *testing.T) {
	reg := httpfilter.NewRegistry(rbac.Factory(), fault.Factory())
	router := func() *hcmv3.HttpFilter { return hf(t, "envoy.filters.http.router", &routerv3.Router{}) }
	unknown := &structpb.Struct{} // a type no filter is registered for
	cases := []struct {
		name    string
		filters []*hcmv3.HttpFilter
		wantErr string // "" : compiles
		wantLen int
	}{
		{"unknown filter", []*hcmv3.HttpFilter{hf(t, "acme.filters.http.magic", unknown), router()}, `http_filters[0] (acme.filters.http.magic): HTTP filter type "type.googleapis.com/google.protobuf.Struct" is not supported`, 0},
		{"unknown optional filter is skipped", []*hcmv3.HttpFilter{hf(t, "acme.filters.http.magic", unknown, optional), router()}, "", 0},
		{"known filters compile in order", []*hcmv3.HttpFilter{hf(t, "f", &faultv3.HTTPFault{}), hf(t, "g", &faultv3.HTTPFault{}, disabled), router()}, "", 2},
		{"router must be last", []*hcmv3.HttpFilter{router(), hf(t, "f", &faultv3.HTTPFault{})}, "http_filters[1] (f): the router filter must be the last", 0},
		{"router is required", []*hcmv3.HttpFilter{hf(t, "f", &faultv3.HTTPFault{})}, "the router filter (envoy.filters.http.router) is required", 0},
		{"router cannot be disabled", []*hcmv3.HttpFilter{hf(t, "envoy.filters.http.router", &routerv3.Router{}, disabled)}, "cannot be disabled", 0},
		{"names may repeat, as in Envoy", []*hcmv3.HttpFilter{hf(t, "f", &faultv3.HTTPFault{}), hf(t, "f", &faultv3.HTTPFault{}), router()}, "", 2},
		{"a bad config names its field", []*hcmv3.HttpFilter{hf(t, "f", &faultv3.HTTPFault{UpstreamCluster: "x"}), router()}, "http_filters[0] (f).upstream_cluster: not supported", 0},
	}
	for _, c := range cases {
		ch, err := reg.Compile(c.filters, "hcm", httpfilter.Env{})
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v; want one containing %q", c.name, err, c.wantErr)
		case err == nil && ch.Len() != c.wantLen:
			t.Errorf("%s: %d filters before the router; want %d", c.name, ch.Len(), c.wantLen)
		}
	}
}

// Per-route entries: a FilterConfig wrapper's disabled and is_optional, unknown types refused by name.
func TestPerRouteConfig(t *testing.T) {
	reg := httpfilter.NewRegistry(rbac.Factory(), fault.Factory())
	unknown := mustAny(t, &structpb.Struct{})
	if _, err := reg.PerRoute("acme", unknown, "route.typed_per_filter_config[acme]"); err == nil || !strings.Contains(err.Error(), `route.typed_per_filter_config[acme]: per-route config type "type.googleapis.com/google.protobuf.Struct" is not supported`) {
		t.Errorf("unknown per-route type: %v; want a refusal naming the entry", err)
	}
	fc, err := reg.PerRoute("acme", mustAny(t, &routev3.FilterConfig{Config: unknown, IsOptional: true}), "f")
	if err != nil || fc != nil {
		t.Errorf("optional unknown per-route config: %v, %v; want it ignored", fc, err)
	}
	fc, err = reg.PerRoute("acme", mustAny(t, &routev3.FilterConfig{Config: unknown, Disabled: true}), "f")
	if err != nil || fc == nil || !fc.Disabled {
		t.Errorf("disabled FilterConfig: %+v, %v; want disabled (its config is ignored, as in Envoy)", fc, err)
	}
	fc, err = reg.PerRoute("f", mustAny(t, &routev3.FilterConfig{Config: mustAny(t, &faultv3.HTTPFault{})}), "f")
	if err != nil || fc == nil || fc.Disabled {
		t.Fatalf("wrapped HTTPFault: %+v, %v", fc, err)
	}
	if _, ok := fc.Config.(*fault.Fault); !ok {
		t.Errorf("wrapped HTTPFault compiled to %T; want *fault.Fault", fc.Config)
	}
}

// benchChain is the chain the speed target names: RBAC evaluating a DENY
// policy the request does not match, and a configured but disabled rate limit.
func benchChain(t testing.TB) *httpfilter.Chain {
	reg := httpfilter.NewRegistry(rbac.Factory(), fault.Factory(), localratelimit.Factory())
	deny := &rbacv3.RBAC{Rules: &rbaccfg.RBAC{Action: rbaccfg.RBAC_DENY, Policies: map[string]*rbaccfg.Policy{"p": {
		Principals:  []*rbaccfg.Principal{{Identifier: &rbaccfg.Principal_Any{Any: true}}},
		Permissions: []*rbaccfg.Permission{{Rule: &rbaccfg.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/admin"}}}}}}},
	}}}}
	lrl := &lrlv3.LocalRateLimit{StatPrefix: "rl", TokenBucket: &typev3.TokenBucket{MaxTokens: 10, FillInterval: durationpb.New(time.Second)},
		FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{}, RuntimeKey: "rl_enabled"}}
	ch, err := reg.Compile([]*hcmv3.HttpFilter{hf(t, "envoy.filters.http.rbac", deny), hf(t, "envoy.filters.http.local_ratelimit", lrl),
		hf(t, "envoy.filters.http.router", &routerv3.Router{})}, "hcm", httpfilter.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// The chain costs the hot path no allocation: RBAC evaluating a request it
// allows and a configured but disabled rate limit, run as both request paths run them.
func TestChainAllocatesNothingPerRequest(t *testing.T) {
	ch := benchChain(t)
	req, _ := http.NewRequest("GET", "http://app/public", nil)
	var s httpfilter.Stream
	p := httpfilter.Peer{Remote: netip.MustParseAddrPort("127.0.0.1:5000"), Local: netip.MustParseAddrPort("127.0.0.1:80")}
	h := http.Header{}
	allocs := testing.AllocsPerRun(1000, func() {
		s.Reset(nil, req, p, nil, nil)
		if ch.DecodeHeaders(&s) != httpfilter.Continue {
			t.Fatal("an allowed request was stopped")
		}
		if s.Encodes(ch) {
			ch.EncodeHeaders(&s, 200, h)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per request through RBAC and a disabled rate limit; want 0", allocs)
	}
	req.URL.Path = "/admin"
	s.Reset(nil, req, p, nil, nil)
	if ch.DecodeHeaders(&s) != httpfilter.Stop {
		t.Error("the DENY policy did not stop /admin: the measured chain was not evaluating RBAC")
	}
}

// BenchmarkChain is what the chain adds to one request (go test -bench Chain -benchmem ./internal/proxy/httpfilter).
func BenchmarkChain(b *testing.B) {
	ch := benchChain(b)
	req, _ := http.NewRequest("GET", "http://app/public", nil)
	p := httpfilter.Peer{Remote: netip.MustParseAddrPort("127.0.0.1:5000"), Local: netip.MustParseAddrPort("127.0.0.1:80")}
	var s httpfilter.Stream
	b.ReportAllocs()
	for b.Loop() {
		s.Reset(nil, req, p, nil, nil)
		ch.DecodeHeaders(&s)
	}
}
