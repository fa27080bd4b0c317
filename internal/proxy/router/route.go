// Package router compiles Envoy RouteConfigurations into lookup tables and
// decides, per request, which route applies and what it asks for: the
// cluster (or weighted clusters), rewrites, redirects, header edits,
// timeouts, retries, faults and mirrors.
package router

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/proxy/match"
	"mesh.dev/mesh/internal/proxy/protofields"
)

// Table is a compiled RouteConfiguration.
type Table struct {
	Name     string
	exact    map[string]*VirtualHost
	suffixes []wild // "*.example.com", longest first
	prefixes []wild // "example.*", longest first
	any      *VirtualHost
	Request  HeaderOps
	Response HeaderOps
	// PerFilter is the route configuration's typed_per_filter_config, compiled by Options.PerFilter.
	PerFilter map[string]*FilterConfig
}

// FilterConfig is one compiled typed_per_filter_config entry.
type FilterConfig struct {
	Config   any  // what the filter's factory compiled (nil: the entry only enables the filter)
	Disabled bool // FilterConfig.disabled: the filter does not run here
}

// Options say how to compile what the router does not interpret itself.
type Options struct {
	// PerFilter compiles a typed_per_filter_config entry for the HTTP filter
	// named name; a nil result with no error drops the entry (an optional
	// filter the proxy lacks). Without it, any such entry is refused.
	PerFilter func(name string, a *anypb.Any, field string) (*FilterConfig, error)
}

type wild struct {
	part string
	vh   *VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name     string
	routes   []*Route
	Request  HeaderOps
	Response HeaderOps
	Retry    *RetryPolicy
	// PerFilter is typed_per_filter_config merged down from the route configuration (the virtual host's entries win).
	PerFilter map[string]*FilterConfig
}

// Route is a compiled route: how to match and what to do.
type Route struct {
	Name string
	VH   *VirtualHost

	pathKind      int
	path          string
	pathRe        *regexp.Regexp
	caseSensitive bool
	headers       []headerMatch
	queries       []queryMatch
	grpc          bool
	fraction      match.Fraction

	Cluster       string
	Weighted      []WeightedCluster
	totalWeight   uint32
	PrefixRewrite string
	RegexRewrite  *regexp.Regexp
	RegexSubst    string
	HostRewrite   string
	AutoHost      bool
	Timeout       time.Duration // 0: none
	Retry         *RetryPolicy
	Mirrors       []Mirror
	Hash          []hashPolicy
	Redirect      *Redirect
	Direct        *Direct
	Request       HeaderOps
	Response      HeaderOps
	// Upgrades holds the route's upgrade_configs: upgrade type (lower case)
	// to enabled, overriding the connection manager's for that type.
	Upgrades map[string]bool
	// PerFilter is the per-filter config in effect on this route: the
	// route's typed_per_filter_config entries, else its virtual host's, else
	// the route configuration's (Envoy's most-specific-wins precedence; a
	// weighted cluster's entries win over all, see WeightedCluster.PerFilter).
	PerFilter map[string]*FilterConfig
}

// WeightedCluster is one target of a weighted split.
type WeightedCluster struct {
	Name     string
	Weight   uint32
	Request  HeaderOps
	Response HeaderOps
	// PerFilter is this cluster's own typed_per_filter_config, the most specific level.
	PerFilter map[string]*FilterConfig
}

// Mirror sends a copy of matching requests to a cluster, ignoring the answer.
type Mirror struct {
	Cluster  string
	Fraction match.Fraction
}

// Redirect answers with a 3xx.
type Redirect struct {
	Scheme, Host, Path, PrefixRewrite string
	Port                              uint32
	Code                              int
	StripQuery                        bool
}

// Direct answers from the proxy itself.
type Direct struct {
	Status int
	Body   string
}

const (
	pathPrefix = iota
	pathExact
	pathRegex
	pathSeparated
)

// Compile builds a Table with no HTTP filter per-route config allowed; unsupported fields are errors naming them.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) { return CompileWith(rc, Options{}) }

// CompileWith builds a Table, compiling typed_per_filter_config through opts.
func CompileWith(rc *routev3.RouteConfiguration, opts Options) (*Table, error) {
	f := "route_configuration " + strconv.Quote(rc.GetName())
	if err := rc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	if err := protofields.Check(rc, f, "name", "virtual_hosts", "vhds", "validate_clusters",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"typed_per_filter_config"); err != nil {
		return nil, err
	}
	if rc.GetValidateClusters().GetValue() {
		// Routes to a missing cluster answer 503 at request time, as with validate_clusters false.
		return nil, fmt.Errorf("%s: validate_clusters true is not supported (routes to unknown clusters answer 503 NC)", f)
	}
	t := &Table{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	var err error
	if t.Request, err = compileHeaderOps(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), f+": request_headers"); err != nil {
		return nil, err
	}
	if t.Response, err = compileHeaderOps(rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove(), f+": response_headers"); err != nil {
		return nil, err
	}
	if rc.GetVhds() != nil {
		return nil, fmt.Errorf("%s: vhds is not supported", f)
	}
	if t.PerFilter, err = compilePerFilter(rc.GetTypedPerFilterConfig(), nil, f+".typed_per_filter_config", opts); err != nil {
		return nil, err
	}
	for i, v := range rc.GetVirtualHosts() {
		vf := fmt.Sprintf("%s: virtual_hosts[%d] (%s)", f, i, v.GetName())
		vh, err := compileVHost(v, t.PerFilter, vf, opts)
		if err != nil {
			return nil, err
		}
		for _, d := range v.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if t.any == nil {
					t.any = vh
				}
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wild{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wild{d[:len(d)-1], vh})
			default:
				if _, dup := t.exact[d]; dup {
					return nil, fmt.Errorf("%s.domains: %q appears in more than one virtual host", vf, d)
				}
				t.exact[d] = vh
			}
		}
	}
	sortWild(t.suffixes)
	sortWild(t.prefixes)
	return t, nil
}

func sortWild(w []wild) {
	for i := 1; i < len(w); i++ {
		for j := i; j > 0 && len(w[j].part) > len(w[j-1].part); j-- {
			w[j], w[j-1] = w[j-1], w[j]
		}
	}
}

func compileVHost(v *routev3.VirtualHost, outer map[string]*FilterConfig, f string, opts Options) (*VirtualHost, error) {
	if err := protofields.Check(v, f, "name", "domains", "routes", "require_tls", "retry_policy", "typed_per_filter_config", "metadata",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, err
	}
	vh := &VirtualHost{Name: v.GetName()}
	var err error
	if vh.Request, err = compileHeaderOps(v.GetRequestHeadersToAdd(), v.GetRequestHeadersToRemove(), f+".request_headers"); err != nil {
		return nil, err
	}
	if vh.Response, err = compileHeaderOps(v.GetResponseHeadersToAdd(), v.GetResponseHeadersToRemove(), f+".response_headers"); err != nil {
		return nil, err
	}
	if v.GetRequireTls() != routev3.VirtualHost_NONE {
		return nil, fmt.Errorf("%s.require_tls: not supported", f)
	}
	if rp := v.GetRetryPolicy(); rp != nil {
		if vh.Retry, err = compileRetry(rp, f+".retry_policy"); err != nil {
			return nil, err
		}
	}
	if vh.PerFilter, err = compilePerFilter(v.GetTypedPerFilterConfig(), outer, f+".typed_per_filter_config", opts); err != nil {
		return nil, err
	}
	for i, r := range v.GetRoutes() {
		rt, err := compileRoute(r, vh, fmt.Sprintf("%s.routes[%d]", f, i), opts)
		if err != nil {
			return nil, err
		}
		vh.routes = append(vh.routes, rt)
	}
	return vh, nil
}

// compilePerFilter compiles a typed_per_filter_config map and lays it over
// outer, the enclosing level's entries: an entry here replaces outer's for
// the same filter name, as Envoy takes the most specific one. The result is
// shared (never mutated after compile); nil when both are empty.
func compilePerFilter(m map[string]*anypb.Any, outer map[string]*FilterConfig, f string, opts Options) (map[string]*FilterConfig, error) {
	if len(m) == 0 {
		return outer, nil
	}
	if opts.PerFilter == nil {
		return nil, fmt.Errorf("%s: per-filter config is not supported here", f)
	}
	out := make(map[string]*FilterConfig, len(outer)+len(m))
	for k, v := range outer {
		out[k] = v
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fc, err := opts.PerFilter(name, m[name], f+"["+name+"]")
		if err != nil {
			return nil, err
		}
		if fc != nil {
			out[name] = fc
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func compileRoute(r *routev3.Route, vh *VirtualHost, f string, opts Options) (*Route, error) {
	if err := protofields.Check(r, f, "name", "match", "route", "redirect", "direct_response", "metadata",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"typed_per_filter_config"); err != nil {
		return nil, err
	}
	rt := &Route{Name: r.GetName(), VH: vh, caseSensitive: true, fraction: match.Always}
	m := r.GetMatch()
	if cs := m.GetCaseSensitive(); cs != nil {
		rt.caseSensitive = cs.GetValue()
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rt.pathKind, rt.path = pathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		rt.pathKind, rt.path = pathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := match.CompileRegex(p.SafeRegex, f+".match.safe_regex")
		if err != nil {
			return nil, err
		}
		rt.pathKind, rt.pathRe = pathRegex, re
	case *routev3.RouteMatch_PathSeparatedPrefix:
		rt.pathKind, rt.path = pathSeparated, p.PathSeparatedPrefix
	default:
		return nil, fmt.Errorf("%s.match: path specifier %T is not supported (use prefix, path, safe_regex or path_separated_prefix)", f, p)
	}
	if !rt.caseSensitive {
		rt.path = strings.ToLower(rt.path)
	}
	if rf := m.GetRuntimeFraction(); rf != nil {
		rt.fraction = match.CompileFraction(rf.GetDefaultValue())
	}
	rt.grpc = m.GetGrpc() != nil
	if len(m.GetDynamicMetadata()) > 0 || len(m.GetFilterState()) > 0 || m.GetTlsContext() != nil {
		return nil, fmt.Errorf("%s.match: dynamic_metadata, filter_state and tls_context matches are not supported", f)
	}
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatch(h, fmt.Sprintf("%s.match.headers[%d]", f, i))
		if err != nil {
			return nil, err
		}
		rt.headers = append(rt.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm, err := compileQueryMatch(q, fmt.Sprintf("%s.match.query_parameters[%d]", f, i))
		if err != nil {
			return nil, err
		}
		rt.queries = append(rt.queries, qm)
	}
	var err error
	if rt.Request, err = compileHeaderOps(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(), f+".request_headers"); err != nil {
		return nil, err
	}
	if rt.Response, err = compileHeaderOps(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove(), f+".response_headers"); err != nil {
		return nil, err
	}
	if rt.PerFilter, err = compilePerFilter(r.GetTypedPerFilterConfig(), vh.PerFilter, f+".typed_per_filter_config", opts); err != nil {
		return nil, err
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if err := rt.compileAction(a.Route, f+".route", opts); err != nil {
			return nil, err
		}
	case *routev3.Route_Redirect:
		rd, err := compileRedirect(a.Redirect, f+".redirect")
		if err != nil {
			return nil, err
		}
		rt.Redirect = rd
	case *routev3.Route_DirectResponse:
		d := &Direct{Status: int(a.DirectResponse.GetStatus())}
		if b := a.DirectResponse.GetBody(); b != nil {
			d.Body = string(b.GetInlineBytes()) + b.GetInlineString()
			if b.GetFilename() != "" {
				return nil, fmt.Errorf("%s.direct_response.body.filename: not supported; inline the body", f)
			}
		}
		rt.Direct = d
	default:
		return nil, fmt.Errorf("%s: action %T is not supported", f, a)
	}
	return rt, nil
}

func (rt *Route) compileAction(a *routev3.RouteAction, f string, opts Options) error {
	if err := protofields.Check(a, f, "cluster", "weighted_clusters", "prefix_rewrite", "regex_rewrite",
		"host_rewrite_literal", "auto_host_rewrite", "timeout", "max_stream_duration", "retry_policy",
		"request_mirror_policies", "hash_policy", "upgrade_configs", "cluster_not_found_response_code"); err != nil {
		return err
	}
	if msd := a.GetMaxStreamDuration(); msd != nil {
		if err := protofields.Check(msd, f+".max_stream_duration", "max_stream_duration"); err != nil {
			return err
		}
	}
	switch c := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		rt.Cluster = c.Cluster
	case *routev3.RouteAction_WeightedClusters:
		for i, wc := range c.WeightedClusters.GetClusters() {
			if wc.GetName() == "" {
				return fmt.Errorf("%s.weighted_clusters.clusters[%d]: name is required (cluster_header is not supported)", f, i)
			}
			w := WeightedCluster{Name: wc.GetName(), Weight: wc.GetWeight().GetValue()}
			var err error
			if w.Request, err = compileHeaderOps(wc.GetRequestHeadersToAdd(), wc.GetRequestHeadersToRemove(), fmt.Sprintf("%s.weighted_clusters.clusters[%d].request_headers", f, i)); err != nil {
				return err
			}
			if w.Response, err = compileHeaderOps(wc.GetResponseHeadersToAdd(), wc.GetResponseHeadersToRemove(), fmt.Sprintf("%s.weighted_clusters.clusters[%d].response_headers", f, i)); err != nil {
				return err
			}
			// A weighted cluster's entries are the most specific level: they win over the route's (nil outer: the chain looks at the route after).
			if w.PerFilter, err = compilePerFilter(wc.GetTypedPerFilterConfig(), nil, fmt.Sprintf("%s.weighted_clusters.clusters[%d].typed_per_filter_config", f, i), opts); err != nil {
				return err
			}
			rt.Weighted = append(rt.Weighted, w)
			rt.totalWeight += w.Weight
		}
		if rt.totalWeight == 0 {
			return fmt.Errorf("%s.weighted_clusters: weights sum to zero", f)
		}
	default:
		return fmt.Errorf("%s: cluster specifier %T is not supported (use cluster or weighted_clusters)", f, c)
	}
	rt.PrefixRewrite = a.GetPrefixRewrite()
	if rr := a.GetRegexRewrite(); rr != nil {
		re, err := regexp.Compile(rr.GetPattern().GetRegex())
		if err != nil {
			return fmt.Errorf("%s.regex_rewrite.pattern: %w", f, err)
		}
		rt.RegexRewrite, rt.RegexSubst = re, envoySubst(rr.GetSubstitution())
	}
	switch h := a.GetHostRewriteSpecifier().(type) {
	case nil:
	case *routev3.RouteAction_HostRewriteLiteral:
		rt.HostRewrite = h.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		rt.AutoHost = h.AutoHostRewrite.GetValue()
	default:
		return fmt.Errorf("%s: host rewrite %T is not supported", f, h)
	}
	rt.Timeout = 15 * time.Second // Envoy's default route timeout
	if d := a.GetTimeout(); d != nil {
		rt.Timeout = d.AsDuration()
	}
	if d := a.GetMaxStreamDuration().GetMaxStreamDuration(); d != nil && d.AsDuration() > 0 && (rt.Timeout == 0 || d.AsDuration() < rt.Timeout) {
		rt.Timeout = d.AsDuration()
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		r, err := compileRetry(rp, f+".retry_policy")
		if err != nil {
			return err
		}
		rt.Retry = r
	} else {
		rt.Retry = rt.VH.Retry
	}
	for i, mp := range a.GetRequestMirrorPolicies() {
		if mp.GetCluster() == "" {
			return fmt.Errorf("%s.request_mirror_policies[%d].cluster: required (cluster_header is not supported)", f, i)
		}
		fr := match.Always
		if rf := mp.GetRuntimeFraction(); rf != nil {
			fr = match.CompileFraction(rf.GetDefaultValue())
		}
		rt.Mirrors = append(rt.Mirrors, Mirror{Cluster: mp.GetCluster(), Fraction: fr})
	}
	for i, hp := range a.GetHashPolicy() {
		h, err := compileHash(hp, fmt.Sprintf("%s.hash_policy[%d]", f, i))
		if err != nil {
			return err
		}
		rt.Hash = append(rt.Hash, h)
	}
	for i, u := range a.GetUpgradeConfigs() {
		uf := fmt.Sprintf("%s.upgrade_configs[%d]", f, i)
		if err := protofields.Check(u, uf, "upgrade_type", "enabled"); err != nil {
			return err
		}
		typ, err := UpgradeType(u.GetUpgradeType())
		if err != nil {
			return fmt.Errorf("%s.upgrade_type: %w", uf, err)
		}
		if rt.Upgrades == nil {
			rt.Upgrades = map[string]bool{}
		}
		rt.Upgrades[typ] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	if a.GetClusterNotFoundResponseCode() != routev3.RouteAction_SERVICE_UNAVAILABLE {
		return fmt.Errorf("%s.cluster_not_found_response_code: only SERVICE_UNAVAILABLE is supported", f)
	}
	return nil
}

// UpgradeType checks an upgrade_configs upgrade_type and returns it in lower
// case, the form Upgrade headers are matched in. Any HTTP/1.1 upgrade token
// is carried (the connection is spliced after the 101); CONNECT is a method,
// not an Upgrade, and needs a tunnel mesh-proxy does not build.
func UpgradeType(s string) (string, error) {
	switch {
	case s == "":
		return "", fmt.Errorf("empty")
	case strings.EqualFold(s, "CONNECT"):
		return "", fmt.Errorf("%q: CONNECT tunnelling is not supported", s)
	case strings.ContainsAny(s, " \t,;\"()<>@:[]{}=?\\"):
		return "", fmt.Errorf("%q is not an HTTP upgrade token", s)
	}
	return strings.ToLower(s), nil
}

// UpgradeAllowed says whether an Upgrade of type typ (lower case) may pass
// on this route, given whether the connection manager enables it: the
// route's own setting wins, as in Envoy.
func (rt *Route) UpgradeAllowed(typ string, hcm bool) bool {
	if on, ok := rt.Upgrades[typ]; ok {
		return on
	}
	return hcm
}

// envoySubst converts RE2 substitution "\1" to Go's "${1}".
func envoySubst(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			b.WriteString("${" + string(s[i+1]) + "}")
			i++
			continue
		}
		if s[i] == '$' {
			b.WriteString("$$")
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func compileRedirect(r *routev3.RedirectAction, f string) (*Redirect, error) {
	rd := &Redirect{Host: r.GetHostRedirect(), Port: r.GetPortRedirect(), StripQuery: r.GetStripQuery()}
	switch s := r.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			rd.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		rd.Scheme = s.SchemeRedirect
	}
	switch p := r.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		rd.Path = p.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		rd.PrefixRewrite = p.PrefixRewrite
	case nil:
	default:
		return nil, fmt.Errorf("%s: %T is not supported (use path_redirect or prefix_rewrite)", f, p)
	}
	switch r.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		rd.Code = 301
	case routev3.RedirectAction_FOUND:
		rd.Code = 302
	case routev3.RedirectAction_SEE_OTHER:
		rd.Code = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		rd.Code = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		rd.Code = 308
	}
	return rd, nil
}

// Lookup finds the route for a request; nil when none matches (Envoy answers 404).
func (t *Table) Lookup(r *http.Request) *Route {
	vh := t.vhost(r.Host)
	if vh == nil {
		return nil
	}
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.RawPath
	}
	for _, rt := range vh.routes {
		if rt.matches(r, path) {
			return rt
		}
	}
	return nil
}

func (t *Table) vhost(host string) *VirtualHost {
	host = strings.ToLower(host)
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		if vh, ok := t.exact[host[:i]]; ok {
			return vh
		}
		host = host[:i]
	}
	for _, w := range t.suffixes {
		if len(host) > len(w.part) && strings.HasSuffix(host, w.part) {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if len(host) > len(w.part) && strings.HasPrefix(host, w.part) {
			return w.vh
		}
	}
	return t.any
}

func (rt *Route) matches(r *http.Request, path string) bool {
	p := path
	if !rt.caseSensitive && rt.pathKind != pathRegex {
		p = strings.ToLower(p)
	}
	switch rt.pathKind {
	case pathPrefix:
		if !strings.HasPrefix(p, rt.path) {
			return false
		}
	case pathExact:
		if p != rt.path {
			return false
		}
	case pathRegex:
		if !rt.pathRe.MatchString(p) {
			return false
		}
	case pathSeparated:
		if !strings.HasPrefix(p, rt.path) || (len(p) > len(rt.path) && p[len(rt.path)] != '/') {
			return false
		}
	}
	if rt.grpc && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return false
	}
	for i := range rt.headers {
		if !rt.headers[i].matchRequest(r) {
			return false
		}
	}
	if len(rt.queries) > 0 {
		q := r.URL.Query()
		for i := range rt.queries {
			if !rt.queries[i].match(q) {
				return false
			}
		}
	}
	return rt.fraction.Hit()
}

// PickCluster chooses the target cluster, honouring weights.
func (rt *Route) PickCluster(rnd uint32) *WeightedCluster {
	if len(rt.Weighted) == 0 {
		return nil
	}
	slot := rnd % rt.totalWeight
	for i := range rt.Weighted {
		if slot < rt.Weighted[i].Weight {
			return &rt.Weighted[i]
		}
		slot -= rt.Weighted[i].Weight
	}
	return &rt.Weighted[len(rt.Weighted)-1]
}

// RewritePath applies prefix_rewrite or regex_rewrite to path. As in
// Envoy, prefix_rewrite swaps the matched prefix, or the whole path of an
// exact path match.
func (rt *Route) RewritePath(path string) string {
	if rt.PrefixRewrite != "" && (rt.pathKind == pathPrefix || rt.pathKind == pathSeparated || rt.pathKind == pathExact) {
		return rt.PrefixRewrite + path[min(len(rt.path), len(path)):]
	}
	if rt.RegexRewrite != nil {
		return rt.RegexRewrite.ReplaceAllString(path, rt.RegexSubst)
	}
	return path
}

// HashKey computes the ring-hash key from the route's hash policies.
func (rt *Route) HashKey(r *http.Request, remote string) (uint64, bool) {
	var h uint64
	have := false
	for _, p := range rt.Hash {
		v, ok := p.value(r, remote)
		if !ok {
			continue
		}
		h = h*31 + xxhash.Sum64String(v)
		have = true
		if p.terminal {
			break
		}
	}
	return h, have
}

// Location builds the Location header of a redirect.
func (rd *Redirect) Location(r *http.Request, rt *Route, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	host := r.Host
	if rd.Host != "" {
		host = rd.Host
		// As Envoy: a new host keeps the port the request came to, unless
		// the redirect sets one or changes the scheme.
		if _, port, err := net.SplitHostPort(r.Host); err == nil && rd.Port == 0 && rd.Scheme == "" && !strings.Contains(host, ":") {
			host = net.JoinHostPort(host, port)
		}
	}
	if rd.Port != 0 {
		if h, _, ok := strings.Cut(host, ":"); ok || true {
			host = h + ":" + strconv.Itoa(int(rd.Port))
		}
	} else if rd.Scheme != "" && strings.Contains(host, ":") {
		host, _, _ = strings.Cut(host, ":") // a scheme change drops the old default port
	}
	path := r.URL.Path
	if rd.Path != "" {
		path = rd.Path
	} else if rd.PrefixRewrite != "" {
		path = rd.PrefixRewrite + path[min(len(rt.path), len(path)):]
	}
	loc := scheme + "://" + host + path
	if !rd.StripQuery && r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	return loc
}
