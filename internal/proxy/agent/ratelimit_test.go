package agent

import (
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/proxy/listener"
)

func hourBucket(n uint32) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: n, TokensPerFill: wrapperspb.UInt32(n), FillInterval: durationpb.New(time.Hour)}
}

func percent(n uint32, key string) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}, RuntimeKey: key}
}

func header(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}}
}

// envoy.filters.http.local_ratelimit on the one chain, the same on a lean
// and a net/http connection: the HCM bucket (enabled through a runtime key
// of the bootstrap's layered_runtime), x-ratelimit-* and
// response_headers_to_add on the 429, a route's own bucket, a route where
// the limit is enabled but not enforced, descriptors from request headers,
// and ordering: requests RBAC denies first take no tokens.
func TestLocalRateLimitOnBothPaths(t *testing.T) {
	up := startUpstream(t, "a", nil)
	hcmLimit := &lrlv3.LocalRateLimit{
		StatPrefix:              "rl",
		TokenBucket:             hourBucket(2),
		FilterEnabled:           percent(0, "test.rl.enabled"), // 0% unless the runtime says otherwise
		FilterEnforced:          percent(100, ""),
		ResponseHeadersToAdd:    []*corev3.HeaderValueOption{header("x-limited", "yes")},
		EnableXRatelimitHeaders: ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
	}
	routeLimit := &lrlv3.LocalRateLimit{StatPrefix: "route_rl", TokenBucket: hourBucket(1), FilterEnabled: percent(100, ""), FilterEnforced: percent(100, ""),
		Status: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}}
	shadow := &lrlv3.LocalRateLimit{StatPrefix: "shadow", TokenBucket: hourBucket(1), FilterEnabled: percent(100, ""), FilterEnforced: percent(0, ""),
		RequestHeadersToAddWhenNotEnforced: []*corev3.HeaderValueOption{header("x-rl", "over")}}
	desc := &lrlv3.LocalRateLimit{StatPrefix: "desc", TokenBucket: hourBucket(100), FilterEnabled: percent(100, ""), FilterEnforced: percent(100, ""),
		AlwaysConsumeDefaultTokenBucket: wrapperspb.Bool(false),
		Descriptors:                     []*ratelimitv3.LocalRateLimitDescriptor{{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "client", Value: "vip"}}, TokenBucket: hourBucket(1)}},
		RateLimits: []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
			RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: "x-client", DescriptorKey: "client"}}}}}}}
	filters := []*hcmv3.HttpFilter{
		namedFilter(t, "envoy.filters.http.rbac", denyPolicy(pathPrefixPerm("/admin"))),
		namedFilter(t, "envoy.filters.http.local_ratelimit", hcmLimit),
	}
	const rl = "envoy.filters.http.local_ratelimit"
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Match: prefix("/route"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, rl, routeLimit)},
		{Match: prefix("/shadow"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, rl, shadow)},
		{Match: prefix("/desc"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, rl, desc)},
		{Match: prefix("/"), Action: routeTo("a")},
	}}}
	layer, err := structpb.NewStruct(map[string]any{"test": map[string]any{"rl": map[string]any{"enabled": 100}}})
	if err != nil {
		t.Fatal(err)
	}
	rt := &bootstrapv3.LayeredRuntime{Layers: []*bootstrapv3.RuntimeLayer{{Name: "static", LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: layer}}}}
	pps := bothPathsWith(t, rt, vhs, filters, staticCluster("a", up))
	vip, bob := map[string]string{"X-Client": "vip"}, map[string]string{"X-Client": "bob"}
	runBoth(t, pps, []filterCase{
		{name: "denied by RBAC (1)", path: "/admin", code: 403, body: "RBAC: access denied"},
		{name: "denied by RBAC (2)", path: "/admin", code: 403, body: "RBAC: access denied"},
		{name: "denied by RBAC (3)", path: "/admin", code: 403, body: "RBAC: access denied"},
		{name: "first token", path: "/a", code: 200, body: "a", headers: map[string]string{"X-Ratelimit-Limit": "2", "X-Ratelimit-Remaining": "1", "X-Limited": ""}},
		{name: "second token", path: "/a", code: 200, body: "a", headers: map[string]string{"X-Ratelimit-Remaining": "0"}},
		{name: "bucket empty", path: "/a", code: 429, body: "local_rate_limited",
			headers: map[string]string{"X-Ratelimit-Limit": "2", "X-Ratelimit-Remaining": "0", "X-Limited": "yes", "X-Upstream": ""}},
		{name: "a route's own bucket", path: "/route", code: 200, body: "a"},
		{name: "a route's own bucket, empty, its own status", path: "/route", code: 503, body: "local_rate_limited", headers: map[string]string{"X-Limited": ""}},
		{name: "not enforced, under the limit", path: "/shadow", code: 200, body: "a", headers: map[string]string{"X-Req-X-Rl": ""}},
		{name: "not enforced, over the limit: forwarded with the header", path: "/shadow", code: 200, body: "a", headers: map[string]string{"X-Req-X-Rl": "over"}},
		{name: "descriptor bucket", path: "/desc", header: vip, code: 200, body: "a"},
		{name: "descriptor bucket empty", path: "/desc", header: vip, code: 429, body: "local_rate_limited"},
		{name: "no descriptor matches: the route's default bucket", path: "/desc", header: bob, code: 200, body: "a"},
		{name: "no descriptor at all", path: "/desc", code: 200, body: "a"},
	})
	for _, pp := range pps {
		stats := map[string]int64{}
		for _, r := range pp.p.Store.Load().List("type.googleapis.com/envoy.config.listener.v3.Listener") {
			for _, h := range r.Compiled.(*listener.Listener).HCMs() {
				for _, c := range h.FilterStats() {
					stats[c.Name] = c.Value.Load()
				}
			}
		}
		want := map[string]int64{"rl.http_local_rate_limit.enabled": 3, "rl.http_local_rate_limit.ok": 2, "rl.http_local_rate_limit.rate_limited": 1,
			"rl.http_local_rate_limit.enforced": 1, "shadow.http_local_rate_limit.rate_limited": 1, "shadow.http_local_rate_limit.enforced": 0,
			"desc.http_local_rate_limit.enforced": 1, "route_rl.http_local_rate_limit.enforced": 1}
		for k, v := range want {
			if stats[k] != v {
				t.Errorf("%s: %s = %d; want %d (all: %v)", pp.name, k, stats[k], v, stats)
			}
		}
	}
}

// Without the runtime key the HCM's limit stays at its 0% default: nothing is limited.
func TestLocalRateLimitDisabledByDefault(t *testing.T) {
	up := startUpstream(t, "a", nil)
	hcmLimit := &lrlv3.LocalRateLimit{StatPrefix: "rl", TokenBucket: hourBucket(1), FilterEnabled: percent(0, "test.rl.enabled"), FilterEnforced: percent(100, "")}
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}}}
	pps := bothPaths(t, vhs, []*hcmv3.HttpFilter{namedFilter(t, "envoy.filters.http.local_ratelimit", hcmLimit)}, staticCluster("a", up))
	runBoth(t, pps, []filterCase{
		{name: "1", path: "/", code: 200, body: "a", headers: map[string]string{"X-Ratelimit-Limit": ""}},
		{name: "2", path: "/", code: 200, body: "a"},
		{name: "3", path: "/", code: 200, body: "a"},
	})
}
