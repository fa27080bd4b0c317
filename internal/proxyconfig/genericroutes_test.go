package proxyconfig

import (
	"strings"
	"testing"

	xdscore "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	actionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/action/v3"
	gpmatcher "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/matcher/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/configdump"
)

func mustAnyOf(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestGenericProxyRoutes: the route table of a generic_proxy filter, inline
// in a listener, shows in the routes table, a row per route.
func TestGenericProxyRoutes(t *testing.T) {
	on := func(ra *actionv3.RouteAction) *xdsmatcher.Matcher_OnMatch {
		return &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Action{Action: &xdscore.TypedExtensionConfig{Name: "r", TypedConfig: mustAnyOf(t, ra)}}}
	}
	exact := func(in proto.Message, v, cluster string) *xdsmatcher.Matcher_MatcherList_FieldMatcher {
		return &xdsmatcher.Matcher_MatcherList_FieldMatcher{
			Predicate: &xdsmatcher.Matcher_MatcherList_Predicate{MatchType: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_{SinglePredicate: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate{
				Input:   &xdscore.TypedExtensionConfig{Name: "in", TypedConfig: mustAnyOf(t, in)},
				Matcher: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: &xdsmatcher.StringMatcher{MatchPattern: &xdsmatcher.StringMatcher_Exact{Exact: v}}}}}},
			OnMatch: on(&actionv3.RouteAction{ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: cluster}}),
		}
	}
	gp := &gpv3.GenericProxy{
		StatPrefix:  "calc",
		CodecConfig: &corev3.TypedExtensionConfig{Name: "thrift", TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/xds.type.v3.TypedStruct"}},
		RouteSpecifier: &gpv3.GenericProxy_RouteConfig{RouteConfig: &gpv3.RouteConfiguration{Name: "calc-routes", Routes: &xdsmatcher.Matcher{
			MatcherType: &xdsmatcher.Matcher_MatcherList_{MatcherList: &xdsmatcher.Matcher_MatcherList{Matchers: []*xdsmatcher.Matcher_MatcherList_FieldMatcher{
				exact(&gpmatcher.MethodMatchInput{}, "bye", "b"),
				exact(&gpmatcher.PropertyMatchInput{PropertyName: "tenant"}, "blue", "b"),
			}}},
			OnNoMatch: on(&actionv3.RouteAction{ClusterSpecifier: &actionv3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(90)}, {Name: "a2", Weight: wrapperspb.UInt32(10)}}}}}),
		}}},
	}
	l := &listenerv3.Listener{Name: "0.0.0.0_9090", FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.generic_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAnyOf(t, gp)}}}}}}
	d := &configdump.Dump{Resources: []*configdump.Resource{{Kind: configdump.KindListener, Name: l.Name, Message: l}}}
	rows := Routes(d, Filter{})
	var got []string
	for _, r := range rows {
		got = append(got, r.Name+" | "+r.VirtualHost+" | "+r.Match)
	}
	want := []string{
		"calc-routes | thrift | method=bye -> b",
		"calc-routes | thrift | tenant=blue -> b",
		"calc-routes | thrift | * -> a (90), a2 (10)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(Routes(d, Filter{Name: "other"})) != 0 {
		t.Fatal("a name filter that matches nothing kept generic routes")
	}
}
