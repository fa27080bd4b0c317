package router

import (
	"net/http"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// typed_per_filter_config is laid level over level, the most specific
// winning per filter name: route over virtual host over route
// configuration; weighted clusters keep their own (the filter chain looks
// there first). Without a compiler for it, any entry is refused.
func TestPerFilterPrecedence(t *testing.T) {
	cfg := func(v string) *anypb.Any { a, _ := anypb.New(wrapperspb.String(v)); return a }
	opts := Options{PerFilter: func(name string, a *anypb.Any, field string) (*FilterConfig, error) {
		s := &wrapperspb.StringValue{}
		if err := a.UnmarshalTo(s); err != nil {
			return nil, err
		}
		return &FilterConfig{Config: s.GetValue()}, nil
	}}
	action := &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
		Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(1), TypedPerFilterConfig: map[string]*anypb.Any{"f": cfg("cluster")}}}}}}}
	rc := &routev3.RouteConfiguration{Name: "rc",
		TypedPerFilterConfig: map[string]*anypb.Any{"f": cfg("rc"), "g": cfg("rc"), "h": cfg("rc")},
		VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"},
			TypedPerFilterConfig: map[string]*anypb.Any{"f": cfg("vh"), "g": cfg("vh")},
			Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: action,
				TypedPerFilterConfig: map[string]*anypb.Any{"f": cfg("route")}}}}}}
	tab, err := CompileWith(rc, opts)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://x/", nil)
	rt := tab.Lookup(req)
	for name, want := range map[string]string{"f": "route", "g": "vh", "h": "rc"} {
		if got := rt.PerFilter[name]; got == nil || got.Config != want {
			t.Errorf("route's %s: %+v; want %q", name, got, want)
		}
	}
	if got := rt.Weighted[0].PerFilter["f"]; got == nil || got.Config != "cluster" {
		t.Errorf("weighted cluster's f: %+v; want cluster", got)
	}
	if _, err := Compile(rc); err == nil {
		t.Error("typed_per_filter_config compiled without a filter registry; want it refused")
	}
}
