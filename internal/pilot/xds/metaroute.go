package xds

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	xdscore "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	xdstype "github.com/cncf/xds/go/xds/type/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	actionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/action/v3"
	gpmatcher "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/matcher/v3"
	gprouter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/router/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/hostmatch"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/validation"
)

// Ports whose protocol is an RPC protocol mesh-proxy has a codec for
// (Thrift) get Envoy's generic_proxy network filter instead of a TCP
// proxy, its route table made of the MetaRoutes naming the service
// (docs/protocols.md).
const (
	genericProxyFilterName = "envoy.filters.network.generic_proxy"
	genericRouterName      = "envoy.filters.generic.router"
	// thriftCodecType is the Thrift codec's config type, mesh's own (mesh-proxy's
	// internal/proxy/genericproxy reads it), sent as a TypedStruct.
	thriftCodecType = "type.googleapis.com/mesh.generic_proxy.codecs.thrift.v1alpha1.ThriftCodecConfig"
)

// isGeneric reports whether a port protocol is sent through generic_proxy.
func isGeneric(p model.Protocol) bool { return p == model.ProtocolThrift }

// codecConfig is the generic_proxy codec of a protocol isGeneric admits.
func codecConfig(p model.Protocol) *corev3.TypedExtensionConfig {
	// auto/auto: each message's protocol and transport are read from its
	// first bytes, so every Thrift client works through one listener.
	v, err := structpb.NewStruct(map[string]any{"protocol": "auto", "transport": "auto"})
	if err != nil {
		panic(err) // a literal
	}
	return &corev3.TypedExtensionConfig{Name: "thrift", TypedConfig: mustAny(&xdstype.TypedStruct{TypeUrl: thriftCodecType, Value: v})}
}

// indexMetaRoutes records the MetaRoutes naming each service, oldest first.
func (pc *PushContext) indexMetaRoutes() {
	mrs := slices.Clone(pc.Snap.MetaRoutes)
	slices.SortStableFunc(mrs, func(a, b *meshnet.MetaRoute) int {
		if olderFirst(a, b) {
			return -1
		}
		if olderFirst(b, a) {
			return 1
		}
		return 0
	})
	pc.mrByHost = map[string][]*meshnet.MetaRoute{}
	for _, mr := range mrs {
		seen := map[string]bool{}
		for _, h := range mr.Spec.Hosts {
			for _, svc := range matchServices(pc.Snap, resolveHost(h, mr.Namespace)) {
				if !seen[svc.Hostname] {
					seen[svc.Hostname] = true
					pc.mrByHost[svc.Hostname] = append(pc.mrByHost[svc.Hostname], mr)
				}
			}
		}
	}
}

// metaRoute is the MetaRoute that routes svc's requests for the proxies of
// namespace ns: the oldest naming it that is exported to ns, as for a
// sidecar's VirtualServices; nil when none is.
func (pc *PushContext) metaRoute(svc *model.Service, ns string) *meshnet.MetaRoute {
	for _, mr := range pc.mrByHost[svc.Hostname] {
		if hostmatch.Exported(mr.Spec.ExportTo, mr.Namespace, ns) {
			return mr
		}
	}
	return nil
}

// outboundGenericFilter is the generic_proxy filter of an RPC service port
// on the outbound side of sidecars in namespace ns: the routes of the
// service's MetaRoute they see in order, and for a request none matches
// the service itself.
func (pc *PushContext) outboundGenericFilter(svc *model.Service, port uint32, ns string) *listenerv3.Filter {
	p, _ := svc.PortByNumber(port)
	def := OutboundClusterName(port, "", svc.Hostname)
	routes := &xdsmatcher.Matcher{}
	var catchAll *actionv3.RouteAction
	if mr := pc.metaRoute(svc, ns); mr != nil {
		var list []*xdsmatcher.Matcher_MatcherList_FieldMatcher
		for i := range mr.Spec.Routes {
			r := &mr.Spec.Routes[i]
			a := pc.metaRouteAction(mr, r, i, port)
			if a == nil {
				continue
			}
			pred := attributesPredicate(r.Match)
			if pred == nil {
				catchAll = a // matches every request: the routes after it are never reached
				break
			}
			list = append(list, &xdsmatcher.Matcher_MatcherList_FieldMatcher{Predicate: pred, OnMatch: gpOnMatch(a)})
		}
		if len(list) > 0 {
			routes.MatcherType = &xdsmatcher.Matcher_MatcherList_{MatcherList: &xdsmatcher.Matcher_MatcherList{Matchers: list}}
		}
	}
	if catchAll == nil {
		catchAll = &actionv3.RouteAction{Name: "default", ClusterSpecifier: &actionv3.RouteAction_Cluster{Cluster: def}}
	}
	routes.OnNoMatch = gpOnMatch(catchAll)
	gp := &gpv3.GenericProxy{
		StatPrefix:  def,
		CodecConfig: codecConfig(p.Protocol),
		RouteSpecifier: &gpv3.GenericProxy_RouteConfig{RouteConfig: &gpv3.RouteConfiguration{
			Name: def, Routes: routes,
		}},
		Filters: []*corev3.TypedExtensionConfig{{Name: genericRouterName, TypedConfig: mustAny(&gprouter.Router{})}},
	}
	return &listenerv3.Filter{Name: genericProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(gp)}}
}

// metaRouteAction is a MetaRoute route's action: its destinations' clusters
// (a subset's is a DestinationRule subset's cluster), timeout and retries.
// nil when no destination has weight.
func (pc *PushContext) metaRouteAction(mr *meshnet.MetaRoute, r *meshnet.MetaRouteRule, i int, port uint32) *actionv3.RouteAction {
	name := r.Name
	if name == "" {
		name = fmt.Sprintf("%s.%s.%d", mr.Name, mr.Namespace, i)
	}
	a := &actionv3.RouteAction{Name: name}
	rc := routeCtx{port: port, gateway: "mesh"}
	var ws []*routev3.WeightedCluster_ClusterWeight
	for _, d := range r.Route {
		w := uint32(max(d.Weight, 0))
		if w == 0 && len(r.Route) == 1 {
			w = 100
		}
		if w == 0 {
			continue
		}
		dst := &networkingapi.Destination{Host: d.Destination.Host, Subset: d.Destination.Subset}
		if d.Destination.Port != nil {
			dst.Port = &networkingapi.PortSelector{Number: uint32(d.Destination.Port.Number)}
		}
		ws = append(ws, &routev3.WeightedCluster_ClusterWeight{Name: pc.destinationCluster(dst, mr.Namespace, rc), Weight: wrapperspb.UInt32(w)})
	}
	switch len(ws) {
	case 0:
		return nil
	case 1:
		a.ClusterSpecifier = &actionv3.RouteAction_Cluster{Cluster: ws[0].Name}
	default:
		a.ClusterSpecifier = &actionv3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: ws}}
	}
	if r.Timeout != "" {
		if d, err := validation.ParseTimeout(r.Timeout); err == nil {
			a.Timeout = durationpb.New(d)
		}
	}
	if rt := r.Retries; rt != nil && rt.Attempts > 0 {
		// generic_proxy's num_retries counts every try, the first too.
		p := &corev3.RetryPolicy{NumRetries: wrapperspb.UInt32(uint32(rt.Attempts) + 1)}
		if on := strings.ReplaceAll(rt.RetryOn, " ", ""); on != "" {
			p.RetryOn = on
		}
		a.RetryPolicy = p
	}
	return a
}

// attributesPredicate is the predicate of a MetaRoute match: every
// attribute named matches (method and service are the request's; any
// other name is a metadata key). nil when the match names none.
func attributesPredicate(m *meshnet.MetaRouteMatch) *xdsmatcher.Matcher_MatcherList_Predicate {
	if m == nil || len(m.Attributes) == 0 {
		return nil
	}
	var preds []*xdsmatcher.Matcher_MatcherList_Predicate
	for _, k := range slices.Sorted(maps.Keys(m.Attributes)) {
		sm := m.Attributes[k]
		var input proto.Message
		switch k {
		case "method":
			input = &gpmatcher.MethodMatchInput{}
		case "service":
			input = &gpmatcher.ServiceMatchInput{}
		default:
			input = &gpmatcher.PropertyMatchInput{PropertyName: k}
		}
		vm := &xdsmatcher.StringMatcher{}
		switch {
		case sm.Exact != "":
			vm.MatchPattern = &xdsmatcher.StringMatcher_Exact{Exact: sm.Exact}
		case sm.Prefix != "":
			vm.MatchPattern = &xdsmatcher.StringMatcher_Prefix{Prefix: sm.Prefix}
		case sm.Regex != "":
			vm.MatchPattern = &xdsmatcher.StringMatcher_SafeRegex{SafeRegex: &xdsmatcher.RegexMatcher{
				EngineType: &xdsmatcher.RegexMatcher_GoogleRe2{GoogleRe2: &xdsmatcher.RegexMatcher_GoogleRE2{}}, Regex: sm.Regex}}
		default:
			continue // refused by validation
		}
		preds = append(preds, &xdsmatcher.Matcher_MatcherList_Predicate{MatchType: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_{
			SinglePredicate: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate{
				Input:   &xdscore.TypedExtensionConfig{Name: k, TypedConfig: mustAny(input)},
				Matcher: &xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: vm},
			}}})
	}
	switch len(preds) {
	case 0:
		return nil
	case 1:
		return preds[0]
	}
	return &xdsmatcher.Matcher_MatcherList_Predicate{MatchType: &xdsmatcher.Matcher_MatcherList_Predicate_AndMatcher{
		AndMatcher: &xdsmatcher.Matcher_MatcherList_Predicate_PredicateList{Predicate: preds}}}
}

func gpOnMatch(a *actionv3.RouteAction) *xdsmatcher.Matcher_OnMatch {
	return &xdsmatcher.Matcher_OnMatch{OnMatch: &xdsmatcher.Matcher_OnMatch_Action{Action: &xdscore.TypedExtensionConfig{Name: a.Name, TypedConfig: mustAny(a)}}}
}
