package gatewayapi

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networkingapi "istio.io/api/networking/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// entry is one translated match of a route rule, with what Gateway API
// precedence orders it by.
type entry struct {
	route *networkingapi.HTTPRoute
	// pathKind: 3 exact, 2 prefix, 1 regular expression (Istio's order
	// for what the spec leaves open), 0 none.
	pathKind, pathLen   int
	method              bool
	headers, queryCount int
	meta                *metav1.ObjectMeta
	index               int // rule and match order within the route
}

// before is Gateway API's precedence between matches of the routes of
// one hostname: exact path, longest prefix, method, most headers, most
// query parameters, then the oldest route, its namespace/name, and rule
// order.
func (a entry) before(b entry) bool {
	switch {
	case a.pathKind != b.pathKind:
		return a.pathKind > b.pathKind
	case a.pathLen != b.pathLen:
		return a.pathLen > b.pathLen
	case a.method != b.method:
		return a.method
	case a.headers != b.headers:
		return a.headers > b.headers
	case a.queryCount != b.queryCount:
		return a.queryCount > b.queryCount
	case a.meta != b.meta:
		return olderFirst(a.meta, b.meta)
	}
	return a.index < b.index
}

var falseV = false

func notAccepted(reason gwv1.RouteConditionReason, format string, args ...any) condition {
	return condition{accepted: &falseV, reason: string(reason), message: fmt.Sprintf(format, args...)}
}

func unresolved(reason gwv1.RouteConditionReason, format string, args ...any) condition {
	return condition{reason: string(reason), message: fmt.Sprintf(format, args...)}
}

// httpEntries translates an HTTPRoute's rules, returning what it could not
// carry out.
func (t *translator) httpEntries(r *gwv1.HTTPRoute, rs *routeState) []condition {
	var problems []condition
	for ri, rule := range r.Spec.Rules {
		base := &networkingapi.HTTPRoute{}
		if rule.Name != nil {
			base.Name = string(*rule.Name)
		}
		var rewrite *gwv1.HTTPURLRewriteFilter
		var redirect *gwv1.HTTPRequestRedirectFilter
		for _, f := range rule.Filters {
			switch f.Type {
			case gwv1.HTTPRouteFilterRequestHeaderModifier:
				base.Headers = headerOps(base.Headers, f.RequestHeaderModifier, true)
			case gwv1.HTTPRouteFilterResponseHeaderModifier:
				base.Headers = headerOps(base.Headers, f.ResponseHeaderModifier, false)
			case gwv1.HTTPRouteFilterRequestMirror:
				if p := t.mirror(r.Namespace, "HTTPRoute", f.RequestMirror); p != nil {
					base.Mirrors = append(base.Mirrors, p)
				} else {
					problems = append(problems, unresolved(gwv1.RouteReasonBackendNotFound, "mirror backend %s is not a Service mesh can reach", f.RequestMirror.BackendRef.Name))
				}
			case gwv1.HTTPRouteFilterURLRewrite:
				rewrite = f.URLRewrite
			case gwv1.HTTPRouteFilterRequestRedirect:
				redirect = f.RequestRedirect
			default:
				problems = append(problems, notAccepted(gwv1.RouteReasonUnsupportedValue, "rule %d: filter %s is not supported by mesh", ri, f.Type))
			}
		}
		if rule.SessionPersistence != nil {
			problems = append(problems, notAccepted(gwv1.RouteReasonUnsupportedValue, "rule %d: sessionPersistence is not supported by mesh", ri))
		}
		if redirect != nil && len(rule.BackendRefs) > 0 {
			problems = append(problems, notAccepted(gwv1.RouteReasonIncompatibleFilters, "rule %d: a RequestRedirect rule cannot also have backendRefs", ri))
		}
		if redirect != nil && rewrite != nil {
			problems = append(problems, notAccepted(gwv1.RouteReasonIncompatibleFilters, "rule %d: RequestRedirect and URLRewrite cannot be combined", ri))
		}
		if to := rule.Timeouts; to != nil {
			if d, ok := duration(to.Request); ok {
				base.Timeout = durationpb.New(d)
			}
			if d, ok := duration(to.BackendRequest); ok {
				base.Retries = &networkingapi.HTTPRetry{Attempts: 2, PerTryTimeout: durationpb.New(d), RetryOn: defaultRetryOn}
			}
		}
		if rule.Retry != nil {
			base.Retries = retries(rule.Retry, base.Retries)
		}
		var dests []*networkingapi.HTTPRouteDestination
		invalid := false
		for _, b := range rule.BackendRefs {
			d, p := t.backend(r.Namespace, "HTTPRoute", b.BackendRef)
			if p != nil {
				problems = append(problems, *p)
				invalid = true
				continue
			}
			if d.Weight == 0 {
				continue
			}
			for _, f := range b.Filters {
				problems = append(problems, backendFilter(d, ri, string(f.Type), f.RequestHeaderModifier, f.ResponseHeaderModifier)...)
			}
			dests = append(dests, d)
		}
		switch {
		case redirect != nil:
		case len(dests) == 0:
			// No backend to send to (none given, or none valid): the
			// spec's 500.
			base.DirectResponse = &networkingapi.HTTPDirectResponse{Status: 500}
		default:
			// An invalid backend's share is dropped rather than answered
			// with 500; docs/gateway-api.md says so.
			_ = invalid
			base.Route = dests
		}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.HTTPRouteMatch{{}}
		}
		for mi, m := range matches {
			for _, pm := range pathMatches(m.Path) {
				hr := cloneRoute(base)
				e := entry{meta: rs.meta, index: ri*1000 + mi, pathKind: pm.kind, pathLen: len(pm.value)}
				im := &networkingapi.HTTPMatchRequest{}
				switch pm.kind {
				case 3:
					im.Uri = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Exact{Exact: pm.value}}
				case 2:
					im.Uri = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Prefix{Prefix: pm.value}}
				case 1:
					im.Uri = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Regex{Regex: pm.value}}
				}
				if pm.kind == 2 {
					e.pathLen = len(strings.TrimSuffix(pm.prefix, "/"))
				}
				for _, h := range m.Headers {
					if im.Headers == nil {
						im.Headers = map[string]*networkingapi.StringMatch{}
					}
					im.Headers[strings.ToLower(string(h.Name))] = stringMatch(h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression, h.Value)
				}
				for _, q := range m.QueryParams {
					if im.QueryParams == nil {
						im.QueryParams = map[string]*networkingapi.StringMatch{}
					}
					im.QueryParams[string(q.Name)] = stringMatch(q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression, q.Value)
				}
				if m.Method != nil {
					im.Method = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Exact{Exact: string(*m.Method)}}
					e.method = true
				}
				e.headers, e.queryCount = len(m.Headers), len(m.QueryParams)
				hr.Match = []*networkingapi.HTTPMatchRequest{im}
				if rewrite != nil {
					hr.Rewrite = rewriteFor(rewrite, pm)
				}
				if redirect != nil {
					hr.Redirect = redirectFor(redirect, pm)
				}
				e.route = hr
				rs.entries = append(rs.entries, e)
			}
		}
	}
	return problems
}

// defaultRetryOn is what Istio retries when a route says nothing: the
// failures a retry cannot make worse.
const defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

// retries is an HTTPRoute rule's retry as an Istio retry policy, on top
// of the one its backendRequest timeout set (which gives the per-try
// timeout). Attempts unset keeps Istio's 2, and 0 turns retries off; the
// codes join the connection failures Istio retries anyway, as status
// codes in retryOn, which pilot hands the proxy as retriable codes.
func retries(r *gwv1.HTTPRouteRetry, from *networkingapi.HTTPRetry) *networkingapi.HTTPRetry {
	out := &networkingapi.HTTPRetry{Attempts: 2, RetryOn: defaultRetryOn}
	if from != nil {
		out = proto.Clone(from).(*networkingapi.HTTPRetry)
	}
	if r.Attempts != nil {
		out.Attempts = int32(*r.Attempts)
	}
	if len(r.Codes) > 0 {
		on := []string{"connect-failure", "refused-stream", "unavailable", "cancelled"}
		for _, c := range r.Codes {
			on = append(on, strconv.Itoa(int(c)))
		}
		out.RetryOn = strings.Join(on, ",")
	}
	if d, ok := duration(r.Backoff); ok && d > 0 {
		out.Backoff = durationpb.New(d)
	}
	return out
}

// backendFilter carries out one filter of a backendRef (HTTPRoute's and
// GRPCRoute's share the type names): the header modifiers, on that
// destination alone; any other makes the rule not accepted.
func backendFilter(d *networkingapi.HTTPRouteDestination, ri int, typ string, req, resp *gwv1.HTTPHeaderFilter) []condition {
	switch typ {
	case string(gwv1.HTTPRouteFilterRequestHeaderModifier):
		d.Headers = headerOps(d.Headers, req, true)
	case string(gwv1.HTTPRouteFilterResponseHeaderModifier):
		d.Headers = headerOps(d.Headers, resp, false)
	default:
		return []condition{notAccepted(gwv1.RouteReasonUnsupportedValue, "rule %d: backendRef filter %s is not supported by mesh", ri, typ)}
	}
	return nil
}

// pathMatch is one Istio URI match for a Gateway API path match. A
// PathPrefix matches whole path elements ("/foo" matches "/foo" and
// "/foo/bar", not "/foobar"), so it becomes an exact match of the prefix
// and a string prefix match of prefix + "/".
type pathMatch struct {
	kind   int
	value  string
	prefix string // the PathPrefix it came from
}

func pathMatches(p *gwv1.HTTPPathMatch) []pathMatch {
	typ, val := gwv1.PathMatchPathPrefix, "/"
	if p != nil {
		if p.Type != nil {
			typ = *p.Type
		}
		if p.Value != nil {
			val = *p.Value
		}
	}
	switch typ {
	case gwv1.PathMatchExact:
		return []pathMatch{{kind: 3, value: val}}
	case gwv1.PathMatchRegularExpression:
		return []pathMatch{{kind: 1, value: val}}
	}
	trimmed := strings.TrimSuffix(val, "/")
	if trimmed == "" {
		return []pathMatch{{kind: 2, value: "/", prefix: "/"}}
	}
	return []pathMatch{{kind: 3, value: trimmed, prefix: trimmed}, {kind: 2, value: trimmed + "/", prefix: trimmed}}
}

func stringMatch(regex bool, v string) *networkingapi.StringMatch {
	if regex {
		return &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Regex{Regex: v}}
	}
	return &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Exact{Exact: v}}
}

func cloneRoute(r *networkingapi.HTTPRoute) *networkingapi.HTTPRoute {
	return proto.Clone(r).(*networkingapi.HTTPRoute)
}

func headerOps(h *networkingapi.Headers, f *gwv1.HTTPHeaderFilter, request bool) *networkingapi.Headers {
	if f == nil {
		return h
	}
	if h == nil {
		h = &networkingapi.Headers{}
	}
	ops := &networkingapi.Headers_HeaderOperations{}
	for _, s := range f.Set {
		if ops.Set == nil {
			ops.Set = map[string]string{}
		}
		ops.Set[strings.ToLower(string(s.Name))] = s.Value
	}
	for _, a := range f.Add {
		if ops.Add == nil {
			ops.Add = map[string]string{}
		}
		ops.Add[strings.ToLower(string(a.Name))] = a.Value
	}
	for _, r := range f.Remove {
		ops.Remove = append(ops.Remove, strings.ToLower(r))
	}
	if request {
		h.Request = ops
	} else {
		h.Response = ops
	}
	return h
}

func rewriteFor(f *gwv1.HTTPURLRewriteFilter, pm pathMatch) *networkingapi.HTTPRewrite {
	rw := &networkingapi.HTTPRewrite{}
	if f.Hostname != nil {
		rw.Authority = string(*f.Hostname)
	}
	if p := f.Path; p != nil {
		switch p.Type {
		case gwv1.FullPathHTTPPathModifier:
			if p.ReplaceFullPath != nil {
				rw.UriRegexRewrite = &networkingapi.RegexRewrite{Match: "^.*$", Rewrite: *p.ReplaceFullPath}
			}
		case gwv1.PrefixMatchHTTPPathModifier:
			if p.ReplacePrefixMatch != nil {
				rw.Uri = prefixReplacement(*p.ReplacePrefixMatch, pm)
			}
		}
	}
	return rw
}

// prefixReplacement is what replaces the part of the path an Istio match
// of pm matched, so that ReplacePrefixMatch keeps the path elements
// after the Gateway API prefix: for the prefix + "/" match, the
// replacement + "/".
func prefixReplacement(repl string, pm pathMatch) string {
	if pm.kind != 2 {
		return repl
	}
	if strings.HasSuffix(repl, "/") {
		return repl
	}
	return repl + "/"
}

func redirectFor(f *gwv1.HTTPRequestRedirectFilter, pm pathMatch) *networkingapi.HTTPRedirect {
	rd := &networkingapi.HTTPRedirect{RedirectCode: 302}
	if f.StatusCode != nil {
		rd.RedirectCode = uint32(*f.StatusCode)
	}
	if f.Scheme != nil {
		rd.Scheme = *f.Scheme
	}
	if f.Hostname != nil {
		rd.Authority = string(*f.Hostname)
	}
	if f.Port != nil {
		rd.RedirectPort = &networkingapi.HTTPRedirect_Port{Port: uint32(*f.Port)}
	}
	if p := f.Path; p != nil {
		switch {
		case p.Type == gwv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
			rd.Uri = *p.ReplaceFullPath
		case p.Type == gwv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil && pm.kind == 3:
			rd.Uri = *p.ReplacePrefixMatch
		case p.Type == gwv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil && pm.kind == 2:
			// The prefix + "/" match: keep the path after it.
			rd.Uri = RedirectPrefixRewrite + prefixReplacement(*p.ReplacePrefixMatch, pm)
		}
	}
	return rd
}

// duration parses a Gateway API duration; "0s" means no timeout, which
// Istio writes as 0 too.
func duration(d *gwv1.Duration) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	v, err := time.ParseDuration(string(*d))
	return v, err == nil
}

// backend resolves a backendRef to an Istio destination, or says why it
// cannot be used.
func (t *translator) backend(routeNS, routeKind string, b gwv1.BackendRef) (*networkingapi.HTTPRouteDestination, *condition) {
	group, kind := "", "Service"
	if b.Group != nil {
		group = string(*b.Group)
	}
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	if group != "" || kind != "Service" {
		c := unresolved(gwv1.RouteReasonInvalidKind, "backendRef %s is a %s; mesh routes to Services", b.Name, kind)
		return nil, &c
	}
	ns := routeNS
	if b.Namespace != nil {
		ns = string(*b.Namespace)
	}
	if ns != routeNS && !t.parentServices[ns+"/"+string(b.Name)] && !t.granted(gwv1.GroupName, routeKind, routeNS, "", "Service", ns, string(b.Name)) {
		c := unresolved(gwv1.RouteReasonRefNotPermitted, "backendRef %s/%s is in another namespace and no ReferenceGrant there allows it", ns, b.Name)
		return nil, &c
	}
	svc := t.services[ns+"/"+string(b.Name)]
	if svc == nil {
		c := unresolved(gwv1.RouteReasonBackendNotFound, "Service %s/%s does not exist", ns, b.Name)
		return nil, &c
	}
	if b.Port == nil {
		c := unresolved(gwv1.RouteReasonUnsupportedValue, "backendRef %s/%s needs a port", ns, b.Name)
		return nil, &c
	}
	found := false
	for _, p := range svc.Spec.Ports {
		if p.Port == *b.Port {
			found = true
		}
	}
	if !found {
		c := unresolved(gwv1.RouteReasonBackendNotFound, "Service %s/%s has no port %d", ns, b.Name, *b.Port)
		return nil, &c
	}
	w := int32(1)
	if b.Weight != nil {
		w = *b.Weight
	}
	return &networkingapi.HTTPRouteDestination{
		Destination: &networkingapi.Destination{
			Host: string(b.Name) + "." + ns + ".svc." + t.in.DomainSuffix,
			Port: &networkingapi.PortSelector{Number: uint32(*b.Port)},
		},
		Weight: w,
	}, nil
}

func (t *translator) mirror(routeNS, routeKind string, f *gwv1.HTTPRequestMirrorFilter) *networkingapi.HTTPMirrorPolicy {
	if f == nil {
		return nil
	}
	d, p := t.backend(routeNS, routeKind, gwv1.BackendRef{BackendObjectReference: f.BackendRef})
	if p != nil {
		return nil
	}
	mp := &networkingapi.HTTPMirrorPolicy{Destination: d.Destination}
	switch {
	case f.Percent != nil:
		mp.Percentage = &networkingapi.Percent{Value: float64(*f.Percent)}
	case f.Fraction != nil:
		den := int32(100)
		if f.Fraction.Denominator != nil {
			den = *f.Fraction.Denominator
		}
		if den > 0 {
			mp.Percentage = &networkingapi.Percent{Value: 100 * float64(f.Fraction.Numerator) / float64(den)}
		}
	}
	return mp
}

// grpcEntries translates a GRPCRoute's rules: a method match is a match
// of the request path /service/method.
func (t *translator) grpcEntries(r *gwv1.GRPCRoute, rs *routeState) []condition {
	var problems []condition
	for ri, rule := range r.Spec.Rules {
		base := &networkingapi.HTTPRoute{}
		if rule.Name != nil {
			base.Name = string(*rule.Name)
		}
		for _, f := range rule.Filters {
			switch f.Type {
			case gwv1.GRPCRouteFilterRequestHeaderModifier:
				base.Headers = headerOps(base.Headers, f.RequestHeaderModifier, true)
			case gwv1.GRPCRouteFilterResponseHeaderModifier:
				base.Headers = headerOps(base.Headers, f.ResponseHeaderModifier, false)
			case gwv1.GRPCRouteFilterRequestMirror:
				if p := t.mirror(r.Namespace, "GRPCRoute", f.RequestMirror); p != nil {
					base.Mirrors = append(base.Mirrors, p)
				} else {
					problems = append(problems, unresolved(gwv1.RouteReasonBackendNotFound, "mirror backend %s is not a Service mesh can reach", f.RequestMirror.BackendRef.Name))
				}
			default:
				problems = append(problems, notAccepted(gwv1.RouteReasonUnsupportedValue, "rule %d: filter %s is not supported by mesh", ri, f.Type))
			}
		}
		if rule.SessionPersistence != nil {
			problems = append(problems, notAccepted(gwv1.RouteReasonUnsupportedValue, "rule %d: sessionPersistence is not supported by mesh", ri))
		}
		var dests []*networkingapi.HTTPRouteDestination
		for _, b := range rule.BackendRefs {
			d, p := t.backend(r.Namespace, "GRPCRoute", b.BackendRef)
			if p != nil {
				problems = append(problems, *p)
				continue
			}
			if d.Weight == 0 {
				continue
			}
			for _, f := range b.Filters {
				problems = append(problems, backendFilter(d, ri, string(f.Type), f.RequestHeaderModifier, f.ResponseHeaderModifier)...)
			}
			dests = append(dests, d)
		}
		if len(dests) == 0 {
			base.DirectResponse = &networkingapi.HTTPDirectResponse{Status: 500}
		} else {
			base.Route = dests
		}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.GRPCRouteMatch{{}}
		}
		for mi, m := range matches {
			hr := cloneRoute(base)
			e := entry{meta: rs.meta, index: ri*1000 + mi}
			im := &networkingapi.HTTPMatchRequest{}
			if mm := m.Method; mm != nil {
				regex := mm.Type != nil && *mm.Type == gwv1.GRPCMethodMatchRegularExpression
				svc, method := deref(mm.Service), deref(mm.Method)
				switch {
				case !regex && svc != "" && method != "":
					im.Uri = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Exact{Exact: "/" + svc + "/" + method}}
					e.pathKind, e.pathLen = 3, len(svc)+len(method)
				case !regex && svc != "":
					im.Uri = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Prefix{Prefix: "/" + svc + "/"}}
					e.pathKind, e.pathLen = 2, len(svc)
				case !regex && method != "":
					im.Uri = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Regex{Regex: "/[^/]+/" + regexp.QuoteMeta(method)}}
					e.pathKind = 1
				case regex:
					s, m := orAny(svc), orAny(method)
					im.Uri = &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Regex{Regex: "/" + s + "/" + m}}
					e.pathKind = 1
				}
			}
			for _, h := range m.Headers {
				if im.Headers == nil {
					im.Headers = map[string]*networkingapi.StringMatch{}
				}
				im.Headers[strings.ToLower(string(h.Name))] = stringMatch(h.Type != nil && *h.Type == gwv1.GRPCHeaderMatchRegularExpression, h.Value)
			}
			e.headers = len(m.Headers)
			hr.Match = []*networkingapi.HTTPMatchRequest{im}
			e.route = hr
			rs.entries = append(rs.entries, e)
		}
	}
	return problems
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orAny(s string) string {
	if s == "" {
		return "[^/]+"
	}
	return s
}
