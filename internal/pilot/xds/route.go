package xds

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/pilot/model"
)

const faultFilterName = "envoy.filters.http.fault"

// routeCtx says where a VirtualService's routes are being placed.
type routeCtx struct {
	port        uint32            // sidecar: the listener port; gateway: 0
	gateway     string            // "mesh" for sidecars, "ns/name" for a gateway
	proxyNS     string            // the client's namespace (sourceNamespace matches)
	proxyLabels map[string]string // the client's labels (sourceLabels matches)
	// configNS is the proxy's namespace for config visibility: which
	// DestinationRule applies (exportTo); set for sidecars and routers.
	configNS string
}

// httpRoutes translates the HTTP rules of vs into Envoy routes.
func (pc *PushContext) httpRoutes(vs *networkingv1.VirtualService, rc routeCtx) []*routev3.Route {
	var out []*routev3.Route
	for i, hr := range vs.Spec.Http {
		if hr.Delegate != nil {
			continue // delegation is not supported; the rule is skipped
		}
		name := hr.Name
		if name == "" {
			name = fmt.Sprintf("%s.%s.%d", vs.Name, vs.Namespace, i)
		}
		action := pc.routeAction(vs, hr, rc)
		matches := hr.Match
		if len(matches) == 0 {
			matches = []*networkingapi.HTTPMatchRequest{nil}
		}
		for _, m := range matches {
			rm, ok := pc.routeMatch(m, rc, vs.Namespace)
			if !ok {
				continue
			}
			r := &routev3.Route{Name: name, Match: rm}
			switch {
			case hr.Redirect != nil:
				r.Action = &routev3.Route_Redirect{Redirect: redirectAction(hr.Redirect)}
			case hr.DirectResponse != nil:
				dr := &routev3.DirectResponseAction{Status: hr.DirectResponse.Status}
				if b := hr.DirectResponse.Body; b != nil {
					if s, ok := b.Specifier.(*networkingapi.HTTPBody_String_); ok {
						dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s.String_}}
					} else {
						dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b.GetBytes()}}
					}
				}
				r.Action = &routev3.Route_DirectResponse{DirectResponse: dr}
			default:
				if action == nil {
					continue
				}
				r.Action = &routev3.Route_Route{Route: action}
			}
			if f := faultConfig(hr.Fault); f != nil {
				r.TypedPerFilterConfig = map[string]*anypb.Any{faultFilterName: mustAny(f)}
			}
			applyHeaderOps(r, hr.Headers)
			if d := onlyDestination(hr); d != nil {
				// One destination is one cluster, not weighted clusters:
				// its header operations are the route's, as istiod
				// writes them.
				applyHeaderOps(r, d.Headers)
			}
			out = append(out, r)
		}
	}
	return out
}

func (pc *PushContext) routeMatch(m *networkingapi.HTTPMatchRequest, rc routeCtx, vsNS string) (*routev3.RouteMatch, bool) {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm, true
	}
	if m.Port != 0 && rc.port != 0 && m.Port != rc.port {
		return nil, false
	}
	if len(m.Gateways) > 0 && !gatewayListed(m.Gateways, rc.gateway, vsNS) {
		return nil, false
	}
	if m.SourceNamespace != "" && rc.gateway == "mesh" && m.SourceNamespace != rc.proxyNS {
		return nil, false
	}
	if len(m.SourceLabels) > 0 && (rc.gateway != "mesh" || !labelsMatch(m.SourceLabels, rc.proxyLabels)) {
		return nil, false
	}
	switch u := m.Uri.GetMatchType().(type) {
	case *networkingapi.StringMatch_Exact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networkingapi.StringMatch_Prefix:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networkingapi.StringMatch_Regex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}
	}
	if m.IgnoreUriCase {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	for _, name := range sortedKeys(m.Headers) {
		rm.Headers = append(rm.Headers, headerMatcher(name, m.Headers[name], false))
	}
	for _, name := range sortedKeys(m.WithoutHeaders) {
		rm.Headers = append(rm.Headers, headerMatcher(name, m.WithoutHeaders[name], true))
	}
	if m.Method != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":method", m.Method, false))
	}
	if m.Authority != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":authority", m.Authority, false))
	}
	if m.Scheme != nil {
		rm.Headers = append(rm.Headers, headerMatcher(":scheme", m.Scheme, false))
	}
	for _, name := range sortedKeys(m.QueryParams) {
		sm := istioStringMatch(m.QueryParams[name])
		qm := &routev3.QueryParameterMatcher{Name: name}
		if sm == nil {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm, true
}

func gatewayListed(gws []string, gw, vsNS string) bool {
	for _, g := range gws {
		if g == gw || (!strings.Contains(g, "/") && vsNS+"/"+g == gw) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func istioStringMatch(s *networkingapi.StringMatch) *matcherv3.StringMatcher {
	switch u := s.GetMatchType().(type) {
	case *networkingapi.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: u.Exact}}
	case *networkingapi.StringMatch_Prefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: u.Prefix}}
	case *networkingapi.StringMatch_Regex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}}
	}
	return nil
}

func headerMatcher(name string, s *networkingapi.StringMatch, invert bool) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert}
	if sm := istioStringMatch(s); sm != nil {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
	} else {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

// destinationCluster names the cluster a VirtualService destination means.
func (pc *PushContext) destinationCluster(d *networkingapi.Destination, vsNS string, rc routeCtx) string {
	host := resolveHost(d.Host, vsNS)
	port := d.GetPort().GetNumber()
	if port == 0 {
		svc := pc.Snap.ServiceByHost(host)
		switch {
		case svc != nil && len(svc.Ports) == 1:
			port = svc.Ports[0].Port
		case svc != nil && rc.port != 0:
			if _, ok := svc.PortByNumber(rc.port); ok {
				port = rc.port
			} else if len(svc.Ports) > 0 {
				port = svc.Ports[0].Port
			}
		case svc != nil && len(svc.Ports) > 0:
			port = svc.Ports[0].Port
		default:
			port = rc.port
		}
	}
	return OutboundClusterName(port, d.Subset, host)
}

func (pc *PushContext) routeAction(vs *networkingv1.VirtualService, hr *networkingapi.HTTPRoute, rc routeCtx) *routev3.RouteAction {
	if len(hr.Route) == 0 {
		return nil
	}
	a := &routev3.RouteAction{Timeout: durationpb.New(0)}
	if len(hr.Route) == 1 {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: pc.destinationCluster(hr.Route[0].Destination, vs.Namespace, rc)}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, d := range hr.Route {
			if d.Weight == 0 && len(hr.Route) > 1 {
				continue
			}
			cw := &routev3.WeightedCluster_ClusterWeight{
				Name:   pc.destinationCluster(d.Destination, vs.Namespace, rc),
				Weight: wrapperspb.UInt32(uint32(d.Weight)),
			}
			if req := d.GetHeaders().GetRequest(); req != nil {
				cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = headerOptions(req), req.Remove
			}
			if resp := d.GetHeaders().GetResponse(); resp != nil {
				cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = headerOptions(resp), resp.Remove
			}
			wc.Clusters = append(wc.Clusters, cw)
		}
		if len(wc.Clusters) == 1 {
			a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: wc.Clusters[0].Name}
		} else {
			a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
		}
	}
	if hr.Timeout != nil {
		a.Timeout = durationpb.New(hr.Timeout.AsDuration())
	}
	a.RetryPolicy = retryPolicy(hr.Retries)
	if hr.Rewrite != nil {
		if hr.Rewrite.Uri != "" {
			a.PrefixRewrite = hr.Rewrite.Uri
		}
		if rr := hr.Rewrite.UriRegexRewrite; rr != nil {
			a.PrefixRewrite = ""
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: rr.Match}, Substitution: rr.Rewrite}
		}
		if hr.Rewrite.Authority != "" {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: hr.Rewrite.Authority}
		}
	}
	if hr.Mirror != nil {
		pct := hr.MirrorPercentage
		if pct == nil && hr.MirrorPercent != nil {
			pct = &networkingapi.Percent{Value: float64(hr.MirrorPercent.Value)}
		}
		a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, mirrorPolicy(pc.destinationCluster(hr.Mirror, vs.Namespace, rc), pct))
	}
	for _, m := range hr.Mirrors {
		if m.Destination != nil {
			a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, mirrorPolicy(pc.destinationCluster(m.Destination, vs.Namespace, rc), m.Percentage))
		}
	}
	// Consistent hashing in the destination's DestinationRule needs a hash
	// policy on the route that sends traffic there.
	if svc := pc.Snap.ServiceByHost(resolveHost(hr.Route[0].Destination.Host, vs.Namespace)); svc != nil {
		a.HashPolicy = pc.hashPolicy(svc, rc.configNS)
	}
	return a
}

func mirrorPolicy(cluster string, pct *networkingapi.Percent) *routev3.RouteAction_RequestMirrorPolicy {
	mp := &routev3.RouteAction_RequestMirrorPolicy{Cluster: cluster}
	if pct != nil {
		mp.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: fraction(pct.Value)}
	}
	return mp
}

// fraction turns a percentage into a per-million fraction, as Istio does.
func fraction(pct float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{
		Numerator:   uint32(math.Round(pct * 10000)),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

const defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

func retryPolicy(r *networkingapi.HTTPRetry) *routev3.RetryPolicy {
	if r == nil {
		return &routev3.RetryPolicy{RetryOn: defaultRetryOn, NumRetries: wrapperspb.UInt32(2)}
	}
	if r.Attempts <= 0 {
		return nil
	}
	p := &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(uint32(r.Attempts))}
	p.RetryOn, p.RetriableStatusCodes = retryOn(r.RetryOn)
	if r.PerTryTimeout != nil {
		p.PerTryTimeout = durationpb.New(r.PerTryTimeout.AsDuration())
	}
	if r.Backoff != nil {
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(r.Backoff.AsDuration())}
	}
	return p
}

// retryOn splits an Istio retryOn into the proxy's conditions and the
// status codes it lists: Istio takes "503" there to mean retry on 503,
// which the proxy is told as retriable-status-codes with the code.
func retryOn(v string) (string, []uint32) {
	if v == "" {
		return defaultRetryOn, nil
	}
	var on []string
	var codes []uint32
	for _, c := range strings.Split(v, ",") {
		c = strings.TrimSpace(c)
		if n, err := strconv.Atoi(c); err == nil {
			codes = append(codes, uint32(n))
			continue
		}
		if c != "" {
			on = append(on, c)
		}
	}
	if len(codes) > 0 && !slices.Contains(on, "retriable-status-codes") {
		on = append(on, "retriable-status-codes")
	}
	return strings.Join(on, ","), codes
}

func (pc *PushContext) hashPolicy(svc *model.Service, proxyNS string) []*routev3.RouteAction_HashPolicy {
	dr := pc.destinationRule(proxyNS, svc)
	if dr == nil || dr.Spec.TrafficPolicy == nil {
		return nil
	}
	ch := dr.Spec.TrafficPolicy.GetLoadBalancer().GetConsistentHash()
	if ch == nil {
		return nil
	}
	var hp *routev3.RouteAction_HashPolicy
	switch {
	case ch.GetHttpHeaderName() != "":
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: ch.GetHttpHeaderName()}}}
	case ch.GetUseSourceIp():
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
	case ch.GetHttpCookie() != nil:
		c := ch.GetHttpCookie()
		cookie := &routev3.RouteAction_HashPolicy_Cookie{Name: c.Name, Path: c.Path}
		if c.Ttl != nil {
			cookie.Ttl = durationpb.New(c.Ttl.AsDuration())
		}
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: cookie}}
	case ch.GetHttpQueryParameterName() != "":
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: ch.GetHttpQueryParameterName()}}}
	default:
		return nil
	}
	return []*routev3.RouteAction_HashPolicy{hp}
}

func redirectAction(r *networkingapi.HTTPRedirect) *routev3.RedirectAction {
	ra := &routev3.RedirectAction{HostRedirect: r.Authority}
	if r.Scheme != "" {
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	if rest, ok := strings.CutPrefix(r.Uri, gatewayapi.RedirectPrefixRewrite); ok {
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: rest}
	} else if r.Uri != "" {
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Uri}
	}
	if p, ok := r.RedirectPort.(*networkingapi.HTTPRedirect_Port); ok {
		ra.PortRedirect = p.Port
	}
	switch r.RedirectCode {
	case 302:
		ra.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		ra.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		ra.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		ra.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		ra.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	}
	return ra
}

func faultConfig(f *networkingapi.HTTPFaultInjection) *faultv3.HTTPFault {
	if f == nil || (f.Delay == nil && f.Abort == nil) {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := f.Delay; d != nil {
		pct := 100.0
		if d.Percentage != nil {
			pct = d.Percentage.Value
		} else if d.Percent > 0 {
			pct = float64(d.Percent)
		}
		fd := &faultcommon.FaultDelay{Percentage: fraction(pct)}
		if fx := d.GetFixedDelay(); fx != nil {
			fd.FaultDelaySecifier = &faultcommon.FaultDelay_FixedDelay{FixedDelay: durationpb.New(fx.AsDuration())}
		} else {
			fd.FaultDelaySecifier = &faultcommon.FaultDelay_HeaderDelay_{HeaderDelay: &faultcommon.FaultDelay_HeaderDelay{}}
		}
		out.Delay = fd
	}
	if a := f.Abort; a != nil {
		pct := 100.0
		if a.Percentage != nil {
			pct = a.Percentage.Value
		}
		fa := &faultv3.FaultAbort{Percentage: fraction(pct)}
		switch {
		case a.GetHttpStatus() != 0:
			fa.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(a.GetHttpStatus())}
		case a.GetGrpcStatus() != "":
			fa.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcCode(a.GetGrpcStatus())}
		default:
			fa.ErrorType = &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}}
		}
		out.Abort = fa
	}
	return out
}

var grpcCodes = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func grpcCode(s string) uint32 {
	for i, c := range grpcCodes {
		if strings.EqualFold(c, s) {
			return uint32(i)
		}
	}
	return 2 // UNKNOWN
}

// onlyDestination is the destination of a rule routing to a single one
// (the others, if any, weighted 0), nil otherwise.
func onlyDestination(hr *networkingapi.HTTPRoute) *networkingapi.HTTPRouteDestination {
	if len(hr.Route) == 1 {
		return hr.Route[0]
	}
	var only *networkingapi.HTTPRouteDestination
	for _, d := range hr.Route {
		if d.Weight == 0 {
			continue
		}
		if only != nil {
			return nil
		}
		only = d
	}
	return only
}

func applyHeaderOps(r *routev3.Route, h *networkingapi.Headers) {
	if h == nil {
		return
	}
	if req := h.Request; req != nil {
		r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, headerOptions(req)...)
		r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, req.Remove...)
	}
	if resp := h.Response; resp != nil {
		r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, headerOptions(resp)...)
		r.ResponseHeadersToRemove = append(r.ResponseHeadersToRemove, resp.Remove...)
	}
}

func headerOptions(ops *networkingapi.Headers_HeaderOperations) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range sortedKeys(ops.Set) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: ops.Set[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range sortedKeys(ops.Add) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: ops.Add[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// defaultRoute sends everything to one cluster, with Istio's default retries.
func defaultRoute(cluster string) *routev3.Route {
	return &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			Timeout:          durationpb.New(0),
			RetryPolicy:      retryPolicy(nil),
		}},
	}
}

// outboundRouteConfig builds the route table named after port for a scope:
// one virtual host per visible HTTP service on that port (and per service
// whose port's protocol is detected: its HTTP connections come here).
func (pc *PushContext) outboundRouteConfig(sc *scope, port uint32, proxyNS string, proxyLabels map[string]string) *item {
	key := fmt.Sprintf("%s|%s|%d", sc.key, proxyNS, port)
	if pc.sourceLabels {
		key += "|" + labelKey(proxyLabels)
	}
	return memo(&pc.mu, pc.routes, key, func() *item { return pc.buildOutboundRouteConfig(sc, port, proxyNS, proxyLabels) })
}

func (pc *PushContext) buildOutboundRouteConfig(sc *scope, port uint32, proxyNS string, proxyLabels map[string]string) *item {
	rc := routeCtx{port: port, gateway: "mesh", proxyNS: proxyNS, proxyLabels: proxyLabels, configNS: proxyNS}
	cfg := &routev3.RouteConfiguration{Name: fmt.Sprint(port), ValidateClusters: wrapperspb.Bool(false)}
	seen := map[string]bool{}
	for _, svc := range sc.services {
		p, ok := svc.PortByNumber(port)
		if !ok || !p.Protocol.MaybeHTTP() {
			continue
		}
		if vh := pc.sharedVirtualHost(svc, port, proxyNS, rc); vh != nil {
			fresh := true
			for _, d := range vh.Domains {
				if seen[d] {
					fresh = false
					break
				}
			}
			if fresh {
				for _, d := range vh.Domains {
					seen[d] = true
				}
				cfg.VirtualHosts = append(cfg.VirtualHosts, vh)
				continue
			}
		}
		if vh := pc.virtualHost(svc, port, proxyNS, rc, seen); vh != nil {
			cfg.VirtualHosts = append(cfg.VirtualHosts, vh)
		}
	}
	cfg.VirtualHosts = append(cfg.VirtualHosts, catchAllVirtualHost(sc.unknown))
	return newItem(cfg.Name, cfg)
}

// catchAllVirtualHost takes the requests whose host no service on the
// port claims, as Istio's: "allow_any" to the passthrough (or egress
// proxy) cluster, or "block_all" answering 502 under REGISTRY_ONLY.
func catchAllVirtualHost(u unknownTraffic) *routev3.VirtualHost {
	if !u.allowAny {
		return &routev3.VirtualHost{
			Name:    "block_all",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:   "block_all",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}},
			}},
		}
	}
	return &routev3.VirtualHost{
		Name:    "allow_any",
		Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Name:  "allow_any",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: u.cluster},
				Timeout:          durationpb.New(0),
			}},
		}},
	}
}

// virtualHost builds svc's virtual host on port for a client in proxyNS,
// leaving out domains already in seen (and adding its own); nil when none
// is left.
func (pc *PushContext) virtualHost(svc *model.Service, port uint32, proxyNS string, rc routeCtx, seen map[string]bool) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: fmt.Sprintf("%s:%d", svc.Hostname, port)}
	for _, d := range serviceDomains(svc, port, proxyNS) {
		if !seen[d] {
			seen[d] = true
			vh.Domains = append(vh.Domains, d)
		}
	}
	if len(vh.Domains) == 0 {
		return nil
	}
	if vss := pc.virtualServices(svc.Hostname, proxyNS); len(vss) > 0 {
		vh.Routes = pc.httpRoutes(vss[0], rc)
	}
	if len(vh.Routes) == 0 {
		vh.Routes = []*routev3.Route{defaultRoute(OutboundClusterName(port, "", svc.Hostname))}
	}
	return vh
}

// sharedVirtualHost is svc's virtual host built once per push for every
// route table that has it: it differs only by whether the client is in the
// service's namespace (short names), which VirtualService and
// DestinationRule (hash policies) the client's namespace sees, unless a
// rule matches on the client's namespace or labels, in which case it is
// nil (built per table instead).
func (pc *PushContext) sharedVirtualHost(svc *model.Service, port uint32, proxyNS string, rc routeCtx) *routev3.VirtualHost {
	var vs *networkingv1.VirtualService
	if vss := pc.virtualServices(svc.Hostname, proxyNS); len(vss) > 0 {
		if matchesOnSource(vss[0]) {
			return nil
		}
		vs = vss[0]
	}
	key := fmt.Sprintf("%s|%d|%v|%s", svc.Hostname, port, svc.Namespace == proxyNS, ruleKey(vs))
	if vs != nil {
		// Hash policies follow the DestinationRules of the routes'
		// destinations, which may differ by the client's namespace.
		for _, hr := range vs.Spec.Http {
			if len(hr.Route) == 0 || hr.Route[0].Destination == nil {
				continue
			}
			if dst := pc.Snap.ServiceByHost(resolveHost(hr.Route[0].Destination.Host, vs.Namespace)); dst != nil {
				key += "|" + ruleKey(pc.destinationRule(proxyNS, dst))
			}
		}
	}
	return memo(&pc.mu, pc.vhosts, key, func() *routev3.VirtualHost {
		return pc.virtualHost(svc, port, proxyNS, rc, map[string]bool{})
	})
}

func matchesOnSource(vs *networkingv1.VirtualService) bool {
	for _, hr := range vs.Spec.Http {
		for _, m := range hr.Match {
			if m.SourceNamespace != "" || len(m.SourceLabels) > 0 {
				return true
			}
		}
	}
	return false
}

func labelKey(l map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(l) {
		b.WriteString(k + "=" + l[k] + ",")
	}
	return b.String()
}

// serviceDomains are the names a client may use for svc on port. Short names
// only resolve within the client's namespace, so they are added only there.
func serviceDomains(svc *model.Service, port uint32, proxyNS string) []string {
	withPort := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, n, fmt.Sprintf("%s:%d", n, port))
		}
		return out
	}
	names := []string{svc.Hostname}
	if svc.Hostname == model.KubeHostname(svc.Name, svc.Namespace) {
		names = append(names, svc.Name+"."+svc.Namespace, svc.Name+"."+svc.Namespace+".svc")
		if svc.Namespace == proxyNS {
			names = append(names, svc.Name)
		}
	}
	if svc.Address != "" {
		names = append(names, svc.Address)
	}
	return withPort(names...)
}
