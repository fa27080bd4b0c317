package genericproxy

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	xdscore "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	actionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/action/v3"
	gpmatcher "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/matcher/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"mesh.dev/mesh/internal/proxy/match"
	"mesh.dev/mesh/internal/proxy/protofields"
)

// The type URLs of the route table's parts.
const (
	routeActionType = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.action.v3.RouteAction"
	serviceInput    = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.matcher.v3.ServiceMatchInput"
	hostInput       = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.matcher.v3.HostMatchInput"
	methodInput     = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.matcher.v3.MethodMatchInput"
	propertyInput   = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.matcher.v3.PropertyMatchInput"
)

// Route is a compiled RouteAction.
type Route struct {
	Name     string
	Cluster  string
	Weighted []weighted
	total    uint32
	// Timeout spans sending the request to its response; 0: none. Envoy's default is 15s.
	Timeout time.Duration
	// Attempts is how many times a request is tried (1: no retry), as
	// generic_proxy reads retry_policy.num_retries.
	Attempts int
	retryOn  retryOn
}

type weighted struct {
	name   string
	weight uint32
}

// retryOn is which failures a retry follows.
type retryOn struct{ connectFailure, reset, timeout bool }

// pick chooses the route's cluster.
func (r *Route) pick() string {
	if len(r.Weighted) == 0 {
		return r.Cluster
	}
	slot := rand.Uint32N(r.total)
	for _, w := range r.Weighted {
		if slot < w.weight {
			return w.name
		}
		slot -= w.weight
	}
	return r.Weighted[len(r.Weighted)-1].name
}

// table is a compiled RouteConfiguration.
type table struct {
	exact    map[string]*matcher
	suffix   []hostPattern // longest first
	prefix   []hostPattern // longest first
	wildcard *matcher      // "*" or the top-level routes
}

type hostPattern struct {
	s string
	m *matcher
}

func compileTable(rc *gpv3.RouteConfiguration, f string) (*table, error) {
	if err := protofields.Check(rc, f, "name", "routes", "virtual_hosts"); err != nil {
		return nil, err
	}
	t := &table{exact: map[string]*matcher{}}
	if rc.GetRoutes() != nil {
		m, err := compileMatcher(rc.GetRoutes(), f+".routes", 0)
		if err != nil {
			return nil, err
		}
		t.wildcard = m
	}
	seen := map[string]bool{}
	for i, vh := range rc.GetVirtualHosts() {
		vf := fmt.Sprintf("%s.virtual_hosts[%d] (%s)", f, i, vh.GetName())
		if err := protofields.Check(vh, vf, "name", "hosts", "routes"); err != nil {
			return nil, err
		}
		if vh.GetRoutes() == nil {
			return nil, fmt.Errorf("%s.routes: a virtual host needs a route table", vf)
		}
		m, err := compileMatcher(vh.GetRoutes(), vf+".routes", 0)
		if err != nil {
			return nil, err
		}
		if len(vh.GetHosts()) == 0 {
			return nil, fmt.Errorf("%s.hosts: a virtual host needs at least one host", vf)
		}
		for _, h := range vh.GetHosts() {
			h = strings.ToLower(h)
			if seen[h] {
				return nil, fmt.Errorf("%s.hosts: %q is in more than one virtual host", vf, h)
			}
			seen[h] = true
			switch {
			case h == "*":
				if t.wildcard != nil {
					return nil, fmt.Errorf("%s.hosts: \"*\" and the route configuration's own routes both give the default table; keep one", vf)
				}
				t.wildcard = m
			case strings.HasPrefix(h, "*"):
				t.suffix = append(t.suffix, hostPattern{h[1:], m})
			case strings.HasSuffix(h, "*"):
				t.prefix = append(t.prefix, hostPattern{h[:len(h)-1], m})
			case strings.Contains(h, "*"):
				return nil, fmt.Errorf("%s.hosts: %q: a wildcard must be the first or last character", vf, h)
			default:
				t.exact[h] = m
			}
		}
	}
	byLen := func(p []hostPattern) {
		sort.SliceStable(p, func(i, j int) bool { return len(p[i].s) > len(p[j].s) })
	}
	byLen(t.suffix)
	byLen(t.prefix)
	return t, nil
}

// route finds the route for f: its host (the service) picks the virtual
// host, whose match tree picks the route.
func (t *table) route(f *Frame) *Route {
	m := t.wildcard
	if h := strings.ToLower(f.Service); h != "" {
		if e := t.exact[h]; e != nil {
			m = e
		} else if p := findPattern(t.suffix, h, strings.HasSuffix); p != nil {
			m = p
		} else if p := findPattern(t.prefix, h, strings.HasPrefix); p != nil {
			m = p
		}
	}
	if m == nil {
		return nil
	}
	return m.match(f)
}

func findPattern(ps []hostPattern, h string, has func(s, p string) bool) *matcher {
	for _, p := range ps {
		// A wildcard does not match the empty string.
		if len(h) > len(p.s) && has(h, p.s) {
			return p.m
		}
	}
	return nil
}

// matcher is a compiled xds.type.matcher.v3.Matcher whose actions are routes.
type matcher struct {
	list      []fieldMatcher
	treeInput input
	exact     map[string]*onMatch
	prefixes  []prefixEntry // longest first
	onNoMatch *onMatch
}

type prefixEntry struct {
	prefix string
	on     *onMatch
}

type fieldMatcher struct {
	pred predicate
	on   *onMatch
}

type onMatch struct {
	route *Route
	sub   *matcher
}

func (o *onMatch) resolve(f *Frame) *Route {
	if o == nil {
		return nil
	}
	if o.sub != nil {
		return o.sub.match(f)
	}
	return o.route
}

func (m *matcher) match(f *Frame) *Route {
	if m.treeInput != nil {
		v, ok := m.treeInput(f)
		if ok {
			if on := m.exact[v]; on != nil {
				if r := on.resolve(f); r != nil {
					return r
				}
			}
			for _, p := range m.prefixes {
				if strings.HasPrefix(v, p.prefix) {
					if r := p.on.resolve(f); r != nil {
						return r
					}
				}
			}
		}
		return m.onNoMatch.resolve(f)
	}
	for _, fm := range m.list {
		if fm.pred(f) {
			if r := fm.on.resolve(f); r != nil {
				return r
			}
		}
	}
	return m.onNoMatch.resolve(f)
}

// input reads one request attribute; ok is false when the request has none.
type input func(f *Frame) (string, bool)

type predicate func(f *Frame) bool

// maxMatcherDepth bounds nested matchers, as Envoy does.
const maxMatcherDepth = 16

func compileMatcher(m *xdsmatcher.Matcher, f string, depth int) (*matcher, error) {
	if depth > maxMatcherDepth {
		return nil, fmt.Errorf("%s: matchers nest deeper than %d", f, maxMatcherDepth)
	}
	if err := protofields.Check(m, f, "matcher_list", "matcher_tree", "on_no_match"); err != nil {
		return nil, err
	}
	out := &matcher{}
	switch mt := m.GetMatcherType().(type) {
	case *xdsmatcher.Matcher_MatcherList_:
		for i, fm := range mt.MatcherList.GetMatchers() {
			ff := fmt.Sprintf("%s.matcher_list.matchers[%d]", f, i)
			if err := protofields.Check(fm, ff, "predicate", "on_match"); err != nil {
				return nil, err
			}
			p, err := compilePredicate(fm.GetPredicate(), ff+".predicate", 0)
			if err != nil {
				return nil, err
			}
			on, err := compileOnMatch(fm.GetOnMatch(), ff+".on_match", depth)
			if err != nil {
				return nil, err
			}
			out.list = append(out.list, fieldMatcher{p, on})
		}
	case *xdsmatcher.Matcher_MatcherTree_:
		tf := f + ".matcher_tree"
		t := mt.MatcherTree
		if err := protofields.Check(t, tf, "input", "exact_match_map", "prefix_match_map"); err != nil {
			return nil, err
		}
		in, err := compileInput(t.GetInput(), tf+".input")
		if err != nil {
			return nil, err
		}
		out.treeInput = in
		switch tt := t.GetTreeType().(type) {
		case *xdsmatcher.Matcher_MatcherTree_ExactMatchMap:
			out.exact = map[string]*onMatch{}
			for k, v := range tt.ExactMatchMap.GetMap() {
				on, err := compileOnMatch(v, fmt.Sprintf("%s.exact_match_map[%q]", tf, k), depth)
				if err != nil {
					return nil, err
				}
				out.exact[k] = on
			}
		case *xdsmatcher.Matcher_MatcherTree_PrefixMatchMap:
			for k, v := range tt.PrefixMatchMap.GetMap() {
				on, err := compileOnMatch(v, fmt.Sprintf("%s.prefix_match_map[%q]", tf, k), depth)
				if err != nil {
					return nil, err
				}
				out.prefixes = append(out.prefixes, prefixEntry{k, on})
			}
			sort.Slice(out.prefixes, func(i, j int) bool { return len(out.prefixes[i].prefix) > len(out.prefixes[j].prefix) })
		default:
			return nil, fmt.Errorf("%s: tree type %T is not supported (exact_match_map or prefix_match_map)", tf, tt)
		}
	case nil:
	default:
		return nil, fmt.Errorf("%s: matcher type %T is not supported", f, mt)
	}
	if m.GetOnNoMatch() != nil {
		on, err := compileOnMatch(m.GetOnNoMatch(), f+".on_no_match", depth)
		if err != nil {
			return nil, err
		}
		out.onNoMatch = on
	}
	return out, nil
}

func compileOnMatch(o *xdsmatcher.Matcher_OnMatch, f string, depth int) (*onMatch, error) {
	if o == nil {
		return nil, fmt.Errorf("%s: on_match is required", f)
	}
	if err := protofields.Check(o, f, "matcher", "action"); err != nil {
		return nil, err
	}
	switch om := o.GetOnMatch().(type) {
	case *xdsmatcher.Matcher_OnMatch_Matcher:
		sub, err := compileMatcher(om.Matcher, f+".matcher", depth+1)
		if err != nil {
			return nil, err
		}
		return &onMatch{sub: sub}, nil
	case *xdsmatcher.Matcher_OnMatch_Action:
		r, err := compileAction(om.Action, f+".action")
		if err != nil {
			return nil, err
		}
		return &onMatch{route: r}, nil
	}
	return nil, fmt.Errorf("%s: needs a matcher or an action", f)
}

func compilePredicate(p *xdsmatcher.Matcher_MatcherList_Predicate, f string, depth int) (predicate, error) {
	if p == nil {
		return nil, fmt.Errorf("%s: a predicate is required", f)
	}
	if depth > maxMatcherDepth {
		return nil, fmt.Errorf("%s: predicates nest deeper than %d", f, maxMatcherDepth)
	}
	switch pt := p.GetMatchType().(type) {
	case *xdsmatcher.Matcher_MatcherList_Predicate_SinglePredicate_:
		sf := f + ".single_predicate"
		sp := pt.SinglePredicate
		if err := protofields.Check(sp, sf, "input", "value_match"); err != nil {
			return nil, err
		}
		in, err := compileInput(sp.GetInput(), sf+".input")
		if err != nil {
			return nil, err
		}
		sm, err := compileStringMatcher(sp.GetValueMatch(), sf+".value_match")
		if err != nil {
			return nil, err
		}
		return func(fr *Frame) bool {
			v, ok := in(fr)
			return ok && sm.Match(v)
		}, nil
	case *xdsmatcher.Matcher_MatcherList_Predicate_OrMatcher, *xdsmatcher.Matcher_MatcherList_Predicate_AndMatcher:
		var list []*xdsmatcher.Matcher_MatcherList_Predicate
		and := false
		name := "or_matcher"
		if a, ok := pt.(*xdsmatcher.Matcher_MatcherList_Predicate_AndMatcher); ok {
			list, and, name = a.AndMatcher.GetPredicate(), true, "and_matcher"
		} else {
			list = pt.(*xdsmatcher.Matcher_MatcherList_Predicate_OrMatcher).OrMatcher.GetPredicate()
		}
		if len(list) < 2 {
			return nil, fmt.Errorf("%s.%s: needs at least two predicates", f, name)
		}
		var ps []predicate
		for i, sub := range list {
			sp, err := compilePredicate(sub, fmt.Sprintf("%s.%s.predicate[%d]", f, name, i), depth+1)
			if err != nil {
				return nil, err
			}
			ps = append(ps, sp)
		}
		return func(fr *Frame) bool {
			for _, p := range ps {
				if p(fr) != and {
					return !and
				}
			}
			return and
		}, nil
	case *xdsmatcher.Matcher_MatcherList_Predicate_NotMatcher:
		sub, err := compilePredicate(pt.NotMatcher, f+".not_matcher", depth+1)
		if err != nil {
			return nil, err
		}
		return func(fr *Frame) bool { return !sub(fr) }, nil
	}
	return nil, fmt.Errorf("%s: needs single_predicate, or_matcher, and_matcher or not_matcher", f)
}

// compileInput reads a request attribute as generic_proxy's inputs name them.
func compileInput(in *xdscore.TypedExtensionConfig, f string) (input, error) {
	if in == nil {
		return nil, fmt.Errorf("%s: an input is required", f)
	}
	f = fmt.Sprintf("%s (%s)", f, in.GetName())
	tc := in.GetTypedConfig()
	switch tu := tc.GetTypeUrl(); tu {
	case serviceInput, hostInput:
		// Envoy's generic proxy has the host stand for the service.
		return func(fr *Frame) (string, bool) { return fr.Service, fr.Service != "" }, nil
	case methodInput:
		return func(fr *Frame) (string, bool) { return fr.Method, true }, nil
	case propertyInput:
		pi := &gpmatcher.PropertyMatchInput{}
		if err := tc.UnmarshalTo(pi); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := protofields.Check(pi, f, "property_name"); err != nil {
			return nil, err
		}
		key := pi.GetPropertyName()
		if key == "" {
			return nil, fmt.Errorf("%s.property_name: name the metadata key to match", f)
		}
		return func(fr *Frame) (string, bool) { v, ok := fr.Meta[key]; return v, ok }, nil
	default:
		return nil, fmt.Errorf("%s: input type %q is not supported (supported: ServiceMatchInput, HostMatchInput, MethodMatchInput, PropertyMatchInput)", f, tu)
	}
}

// compileStringMatcher compiles xDS's string matcher with the proxy's
// Envoy string matcher, which has the same patterns.
func compileStringMatcher(m *xdsmatcher.StringMatcher, f string) (*match.String, error) {
	if m == nil {
		return nil, fmt.Errorf("%s: value_match is required", f)
	}
	em := &matcherv3.StringMatcher{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *xdsmatcher.StringMatcher_Exact:
		em.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: p.Exact}
	case *xdsmatcher.StringMatcher_Prefix:
		em.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: p.Prefix}
	case *xdsmatcher.StringMatcher_Suffix:
		em.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: p.Suffix}
	case *xdsmatcher.StringMatcher_Contains:
		em.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: p.Contains}
	case *xdsmatcher.StringMatcher_SafeRegex:
		em.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p.SafeRegex.GetRegex()}}
	default:
		return nil, fmt.Errorf("%s: match pattern %T is not supported (exact, prefix, suffix, contains, safe_regex)", f, p)
	}
	return match.CompileString(em, f)
}

func compileAction(a *xdscore.TypedExtensionConfig, f string) (*Route, error) {
	f = fmt.Sprintf("%s (%s)", f, a.GetName())
	tc := a.GetTypedConfig()
	if tu := tc.GetTypeUrl(); tu != routeActionType {
		return nil, fmt.Errorf("%s: action type %q is not supported (only %s)", f, tu, routeActionType)
	}
	ra := &actionv3.RouteAction{}
	if err := tc.UnmarshalTo(ra); err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	if err := ra.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	if err := protofields.Check(ra, f, "name", "cluster", "weighted_clusters", "timeout", "retry_policy"); err != nil {
		return nil, err
	}
	r := &Route{Name: ra.GetName(), Timeout: 15 * time.Second, Attempts: 1, retryOn: retryOn{connectFailure: true, reset: true}}
	if a.GetName() != "" && r.Name == "" {
		r.Name = a.GetName()
	}
	switch cs := ra.GetClusterSpecifier().(type) {
	case *actionv3.RouteAction_Cluster:
		r.Cluster = cs.Cluster
	case *actionv3.RouteAction_WeightedClusters:
		wf := f + ".weighted_clusters"
		for i, c := range cs.WeightedClusters.GetClusters() {
			cf := fmt.Sprintf("%s.clusters[%d]", wf, i)
			if err := protofields.Check(c, cf, "name", "weight"); err != nil {
				return nil, err
			}
			r.Weighted = append(r.Weighted, weighted{c.GetName(), c.GetWeight().GetValue()})
			r.total += c.GetWeight().GetValue()
		}
		if err := protofields.Check(cs.WeightedClusters, wf, "clusters"); err != nil {
			return nil, err
		}
		if r.total == 0 {
			return nil, fmt.Errorf("%s: weights sum to zero", wf)
		}
	default:
		return nil, fmt.Errorf("%s: cluster or weighted_clusters is required", f)
	}
	if d := ra.GetTimeout(); d != nil {
		r.Timeout = d.AsDuration()
	}
	if rp := ra.GetRetryPolicy(); rp != nil {
		pf := f + ".retry_policy"
		if err := protofields.Check(rp, pf, "num_retries", "retry_on"); err != nil {
			return nil, err
		}
		if n := rp.GetNumRetries(); n != nil {
			r.Attempts = max(1, int(n.GetValue()))
		}
		if on := rp.GetRetryOn(); on != "" {
			r.retryOn = retryOn{}
			for _, w := range strings.Split(on, ",") {
				switch strings.TrimSpace(w) {
				case "connect-failure":
					r.retryOn.connectFailure = true
				case "reset":
					r.retryOn.reset = true
				case "timeout":
					r.retryOn.timeout = true
				default:
					return nil, fmt.Errorf("%s.retry_on: %q is not a condition mesh-proxy retries on (connect-failure, reset, timeout)", pf, w)
				}
			}
		}
	}
	return r, nil
}
