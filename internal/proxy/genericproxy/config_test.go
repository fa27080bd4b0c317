package genericproxy

import (
	"strings"
	"testing"
	"time"

	xdscore "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	xdstype "github.com/cncf/xds/go/xds/type/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	actionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/action/v3"
	gpmatcher "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/matcher/v3"
	gprouter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/router/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func thriftCodecConfig(t *testing.T, v map[string]any) *corev3.TypedExtensionConfig {
	s, err := structpb.NewStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TypedExtensionConfig{Name: "thrift", TypedConfig: anyOf(t, &xdstype.TypedStruct{TypeUrl: ThriftCodecType, Value: s})}
}

// baseConfig routes method "add" to cluster calc, the rest to default.
func baseConfig(t *testing.T, ra *actionv3.RouteAction) *gpv3.GenericProxy {
	if ra == nil {
		ra = &actionv3.RouteAction{ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: "calc"}}
	}
	routes := &xdsmatcher.Matcher{
		MatcherType: &xdsmatcher.Matcher_MatcherList_{MatcherList: &xdsmatcher.Matcher_MatcherList{Matchers: []*xdsmatcher.Matcher_MatcherList_FieldMatcher{{
			Predicate: &xdsmatcher.Matcher_MatcherList_Predicate{MatchType: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_{
				SinglePredicate: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate{
					Input:   &xdscore.TypedExtensionConfig{Name: "method", TypedConfig: anyOf(t, &gpmatcher.MethodMatchInput{})},
					Matcher: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: &xdsmatcher.StringMatcher{MatchPattern: &xdsmatcher.StringMatcher_Exact{Exact: "add"}}}}}},
			OnMatch: &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Action{Action: &xdscore.TypedExtensionConfig{Name: "add", TypedConfig: anyOf(t, ra)}}},
		}}}},
		OnNoMatch: &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Action{Action: &xdscore.TypedExtensionConfig{Name: "default",
			TypedConfig: anyOf(t, &actionv3.RouteAction{ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: "default"}})}}},
	}
	return &gpv3.GenericProxy{
		StatPrefix:     "t",
		CodecConfig:    thriftCodecConfig(t, map[string]any{"protocol": "binary", "transport": "framed"}),
		RouteSpecifier: &gpv3.GenericProxy_RouteConfig{RouteConfig: &gpv3.RouteConfiguration{Name: "r", Routes: routes}},
		Filters:        []*corev3.TypedExtensionConfig{{Name: "router", TypedConfig: anyOf(t, &gprouter.Router{})}},
	}
}

func TestCompileRoutes(t *testing.T) {
	ra := &actionv3.RouteAction{Name: "add", ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: "calc"},
		Timeout: durationpb.New(2 * time.Second), RetryPolicy: &corev3.RetryPolicy{NumRetries: wrapperspb.UInt32(3), RetryOn: "connect-failure,timeout"}}
	p, err := Compile(baseConfig(t, ra), "gp", Env{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := p.table.route(&Frame{Method: "add"})
	if r == nil || r.pick() != "calc" || r.Timeout != 2*time.Second || r.Attempts != 3 || !r.retryOn.timeout || r.retryOn.reset {
		t.Fatalf("add: %+v", r)
	}
	if r := p.table.route(&Frame{Method: "sub"}); r == nil || r.pick() != "default" || r.Timeout != 15*time.Second || r.Attempts != 1 {
		t.Fatalf("sub: %+v", r)
	}
}

// TestCompileRefusesByName: what mesh-proxy would not carry out is refused,
// naming the field or type, so the control plane sees a NACK that says why.
func TestCompileRefusesByName(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*gpv3.GenericProxy)
		want string
	}{
		{"unknown codec", func(g *gpv3.GenericProxy) {
			g.CodecConfig = &corev3.TypedExtensionConfig{Name: "kafka", TypedConfig: anyOf(t, &xdstype.TypedStruct{TypeUrl: "type.googleapis.com/example.Kafka"})}
		}, `codec type "type.googleapis.com/example.Kafka" is not supported`},
		{"dubbo (not yet)", func(g *gpv3.GenericProxy) {
			g.CodecConfig = &corev3.TypedExtensionConfig{Name: "dubbo", TypedConfig: &anypb.Any{TypeUrl: dubboCodecType}}
		}, "Dubbo codec is not supported yet"},
		{"unknown codec field", func(g *gpv3.GenericProxy) {
			g.CodecConfig = thriftCodecConfig(t, map[string]any{"protocol": "binary", "framing": "yes"})
		}, "field framing is not supported"},
		{"bad codec value", func(g *gpv3.GenericProxy) {
			g.CodecConfig = thriftCodecConfig(t, map[string]any{"protocol": "json"})
		}, `"json" is not a Thrift protocol`},
		{"route metadata", func(g *gpv3.GenericProxy) {
			*g = *baseConfig(t, &actionv3.RouteAction{ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: "c"}, Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"x": {}}}})
		}, "field metadata is not supported"},
		{"retry back-off", func(g *gpv3.GenericProxy) {
			*g = *baseConfig(t, &actionv3.RouteAction{ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: "c"}, RetryPolicy: &corev3.RetryPolicy{RetryBackOff: &corev3.BackoffStrategy{BaseInterval: durationpb.New(time.Second)}}})
		}, "field retry_back_off is not supported"},
		{"retry on", func(g *gpv3.GenericProxy) {
			*g = *baseConfig(t, &actionv3.RouteAction{ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: "c"}, RetryPolicy: &corev3.RetryPolicy{RetryOn: "5xx"}})
		}, `retry_on: "5xx"`},
		{"unknown filter", func(g *gpv3.GenericProxy) {
			g.Filters = append([]*corev3.TypedExtensionConfig{{Name: "rl", TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/example.RateLimit"}}}, g.Filters...)
		}, `filter type "type.googleapis.com/example.RateLimit" is not supported`},
		{"no router", func(g *gpv3.GenericProxy) { g.Filters = nil }, "the router filter"},
		{"tracing", func(g *gpv3.GenericProxy) { g.Tracing = &hcmv3.HttpConnectionManager_Tracing{} }, "field tracing is not supported"},
		{"rds", func(g *gpv3.GenericProxy) {
			g.RouteSpecifier = &gpv3.GenericProxy_GenericRds{GenericRds: &gpv3.GenericRds{RouteConfigName: "r", ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}
		}, "generic_rds: route discovery is not supported"},
		{"request input", func(g *gpv3.GenericProxy) {
			sp := g.GetRouteConfig().GetRoutes().GetMatcherList().GetMatchers()[0].GetPredicate().GetSinglePredicate()
			sp.Input = &xdscore.TypedExtensionConfig{Name: "req", TypedConfig: anyOf(t, &gpmatcher.RequestMatchInput{})}
		}, "RequestMatchInput"},
	}
	for _, c := range cases {
		g := baseConfig(t, nil)
		c.mod(g)
		_, err := Compile(g, "gp", Env{}, nil)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want it to say %q", c.name, err, c.want)
		}
	}
}
