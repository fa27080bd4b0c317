package router

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Route and RouteAction fields the proxy does not act on are refused by name.
func TestUnhonouredRouteFieldsAreRefusedByName(t *testing.T) {
	for _, tc := range []struct {
		set  func(*routev3.Route)
		want string
	}{
		{func(r *routev3.Route) { r.GetRoute().IdleTimeout = durationpb.New(1) }, "route: field idle_timeout is not supported"},
		{func(r *routev3.Route) { r.Decorator = &routev3.Decorator{Operation: "op"} }, "field decorator is not supported"},
		{func(r *routev3.Route) {
			r.GetRoute().MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: durationpb.New(1)}
		}, "max_stream_duration: field grpc_timeout_header_max is not supported"},
	} {
		r := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "a"}}}}
		tc.set(r)
		_, err := Compile(&routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*routev3.Route{r}}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
}

// RouteConfiguration and VirtualHost fields the proxy does not act on are refused by name.
func TestUnhonouredRouteConfigAndVirtualHostFieldsAreRefusedByName(t *testing.T) {
	vh := &routev3.VirtualHost{Name: "vh", Domains: []string{"*"}, IncludeRequestAttemptCount: true}
	if _, err := Compile(&routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{vh}}); err == nil ||
		!strings.Contains(err.Error(), "field include_request_attempt_count is not supported") {
		t.Errorf("virtual host: %v", err)
	}
	rc := &routev3.RouteConfiguration{Name: "rc", MostSpecificHeaderMutationsWins: true}
	if _, err := Compile(rc); err == nil || !strings.Contains(err.Error(), `route_configuration "rc": field most_specific_header_mutations_wins is not supported`) {
		t.Errorf("route configuration: %v", err)
	}
	rc = &routev3.RouteConfiguration{Name: "rc", ValidateClusters: wrapperspb.Bool(true)}
	if _, err := Compile(rc); err == nil || !strings.Contains(err.Error(), "validate_clusters true") {
		t.Errorf("validate_clusters: %v", err)
	}
	if _, err := Compile(&routev3.RouteConfiguration{Name: "rc", ValidateClusters: wrapperspb.Bool(false)}); err != nil {
		t.Errorf("validate_clusters false, as pilot sends it: %v", err)
	}
}
