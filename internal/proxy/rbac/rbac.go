// Package rbac evaluates Envoy RBAC policies (the HTTP filter behind Istio's
// AuthorizationPolicy) against a request's peer identity, path, method and headers.
package rbac

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbaccfg "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/match"
	"mesh.dev/mesh/internal/proxy/protofields"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

// Request is what a policy can see of one request.
type Request struct {
	HTTP      *http.Request
	Principal string // peer SPIFFE ID from mTLS, "" when plaintext
	Remote    netip.AddrPort
	Local     netip.AddrPort
	SNI       string
	// Meta is the request's filter state (the JWT filter's request.auth
	// attributes under istio_authn); nil on connections.
	Meta *httpfilter.Metadata
}

// Engine is a compiled RBAC filter config.
type Engine struct {
	deny     bool // action DENY
	log      bool // action LOG: never blocks
	policies []policy
	enabled  bool
}

type policy struct {
	name        string
	permissions []pred
	principals  []pred
}

type pred func(*Request) bool

// Compile builds an Engine from the RBAC HTTP filter's rules.
func Compile(c *rbacv3.RBAC, f string) (*Engine, error) {
	return CompileRules(c.GetRules(), f+".rules")
}

// CompileRules builds an Engine from one RBAC rule set (rules or
// shadow_rules); f names it for errors. nil rules: an engine allowing all.
func CompileRules(rules *rbaccfg.RBAC, f string) (*Engine, error) {
	e := &Engine{}
	if rules == nil {
		return e, nil // no rules: the filter only shadows, all requests pass
	}
	e.enabled = true
	switch rules.GetAction() {
	case rbaccfg.RBAC_ALLOW:
	case rbaccfg.RBAC_DENY:
		e.deny = true
	case rbaccfg.RBAC_LOG:
		e.log = true
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for n := range rules.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := rules.GetPolicies()[n]
		pf := fmt.Sprintf("%s.policies[%s]", f, n)
		if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
			return nil, fmt.Errorf("%s: condition (CEL) is not supported", pf)
		}
		pol := policy{name: n}
		for i, perm := range p.GetPermissions() {
			pr, err := permission(perm, fmt.Sprintf("%s.permissions[%d]", pf, i))
			if err != nil {
				return nil, err
			}
			pol.permissions = append(pol.permissions, pr)
		}
		for i, id := range p.GetPrincipals() {
			pr, err := principal(id, fmt.Sprintf("%s.principals[%d]", pf, i))
			if err != nil {
				return nil, err
			}
			pol.principals = append(pol.principals, pr)
		}
		e.policies = append(e.policies, pol)
	}
	return e, nil
}

// Allowed decides a request; the second value names the matched policy.
func (e *Engine) Allowed(r *Request) (bool, string) {
	if e == nil || !e.enabled || e.log {
		return true, ""
	}
	matched := ""
	for _, p := range e.policies {
		if anyOf(p.permissions, r) && anyOf(p.principals, r) {
			matched = p.name
			break
		}
	}
	if e.deny {
		return matched == "", matched
	}
	return matched != "", matched
}

// Matches reports whether any policy matches the request, whatever the
// action: for a LOG engine, whether the request is to be logged.
func (e *Engine) Matches(r *Request) bool {
	if e == nil || !e.enabled {
		return false
	}
	for _, p := range e.policies {
		if anyOf(p.permissions, r) && anyOf(p.principals, r) {
			return true
		}
	}
	return false
}

// Log reports whether the engine's action is LOG (decides nothing, marks
// what it matches for the access log).
func (e *Engine) Log() bool { return e != nil && e.enabled && e.log }

func anyOf(ps []pred, r *Request) bool {
	for _, p := range ps {
		if p(r) {
			return true
		}
	}
	return false
}

func allOf(ps []pred, r *Request) bool {
	for _, p := range ps {
		if !p(r) {
			return false
		}
	}
	return true
}

func permission(p *rbaccfg.Permission, f string) (pred, error) {
	switch r := p.GetRule().(type) {
	case *rbaccfg.Permission_Any:
		return func(*Request) bool { return true }, nil
	case *rbaccfg.Permission_AndRules:
		ps, err := permissions(r.AndRules.GetRules(), f+".and_rules")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return allOf(ps, q) }, nil
	case *rbaccfg.Permission_OrRules:
		ps, err := permissions(r.OrRules.GetRules(), f+".or_rules")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return anyOf(ps, q) }, nil
	case *rbaccfg.Permission_NotRule:
		in, err := permission(r.NotRule, f+".not_rule")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return !in(q) }, nil
	case *rbaccfg.Permission_Header:
		return header(r.Header, f+".header")
	case *rbaccfg.Permission_UrlPath:
		m, err := match.CompileString(r.UrlPath.GetPath(), f+".url_path.path")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return m.Match(requestPath(q.HTTP.URL)) }, nil
	case *rbaccfg.Permission_DestinationPort:
		port := uint16(r.DestinationPort)
		return func(q *Request) bool { return q.Local.Port() == port }, nil
	case *rbaccfg.Permission_DestinationIp:
		pfx, err := cidr(r.DestinationIp, f+".destination_ip")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return pfx.Contains(q.Local.Addr().Unmap()) }, nil
	case *rbaccfg.Permission_RequestedServerName:
		m, err := match.CompileString(r.RequestedServerName, f+".requested_server_name")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return m.Match(q.SNI) }, nil
	default:
		return nil, fmt.Errorf("%s: permission rule %T is not supported", f, r)
	}
}

func permissions(ps []*rbaccfg.Permission, f string) ([]pred, error) {
	var out []pred
	for i, p := range ps {
		x, err := permission(p, fmt.Sprintf("%s.rules[%d]", f, i))
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func principal(p *rbaccfg.Principal, f string) (pred, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbaccfg.Principal_Any:
		return func(*Request) bool { return true }, nil
	case *rbaccfg.Principal_AndIds:
		ps, err := principals(id.AndIds.GetIds(), f+".and_ids")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return allOf(ps, q) }, nil
	case *rbaccfg.Principal_OrIds:
		ps, err := principals(id.OrIds.GetIds(), f+".or_ids")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return anyOf(ps, q) }, nil
	case *rbaccfg.Principal_NotId:
		in, err := principal(id.NotId, f+".not_id")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return !in(q) }, nil
	case *rbaccfg.Principal_Authenticated_:
		if id.Authenticated.GetPrincipalName() == nil {
			return func(q *Request) bool { return q.Principal != "" }, nil
		}
		m, err := match.CompileString(id.Authenticated.GetPrincipalName(), f+".authenticated.principal_name")
		if err != nil {
			return nil, err
		}
		// Istio writes principals without the spiffe:// scheme; Envoy matches both forms.
		return func(q *Request) bool {
			return q.Principal != "" && (m.Match(q.Principal) || m.Match(strings.TrimPrefix(q.Principal, "spiffe://")))
		}, nil
	case *rbaccfg.Principal_DirectRemoteIp:
		return ipPred(id.DirectRemoteIp, f+".direct_remote_ip")
	case *rbaccfg.Principal_RemoteIp:
		return ipPred(id.RemoteIp, f+".remote_ip")
	case *rbaccfg.Principal_SourceIp: //nolint:staticcheck // still sent by control planes
		return ipPred(id.SourceIp, f+".source_ip")
	case *rbaccfg.Principal_Header:
		return header(id.Header, f+".header")
	case *rbaccfg.Principal_UrlPath:
		m, err := match.CompileString(id.UrlPath.GetPath(), f+".url_path.path")
		if err != nil {
			return nil, err
		}
		return func(q *Request) bool { return m.Match(requestPath(q.HTTP.URL)) }, nil
	case *rbaccfg.Principal_Metadata:
		return metadataPred(id.Metadata, f+".metadata")
	default:
		return nil, fmt.Errorf("%s: principal identifier %T is not supported", f, id)
	}
}

func principals(ps []*rbaccfg.Principal, f string) ([]pred, error) {
	var out []pred
	for i, p := range ps {
		x, err := principal(p, fmt.Sprintf("%s.ids[%d]", f, i))
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func ipPred(c *corev3.CidrRange, f string) (pred, error) {
	pfx, err := cidr(c, f)
	if err != nil {
		return nil, err
	}
	// A dual-stack listener reports an IPv4 peer as ::ffff:a.b.c.d, which
	// an IPv4 block does not contain: the address is compared as IPv4.
	return func(q *Request) bool { return pfx.Contains(q.Remote.Addr().Unmap()) }, nil
}

func cidr(c *corev3.CidrRange, f string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s.address_prefix: %w", f, err)
	}
	bits := a.BitLen()
	if l := c.GetPrefixLen(); l != nil {
		bits = int(l.GetValue())
	}
	return a.Prefix(bits)
}

// header matches pseudo-headers (:method, :path, :authority, :scheme) and real ones.
func header(h *routev3.HeaderMatcher, f string) (pred, error) {
	get, err := headerGetter(h.GetName())
	if err != nil {
		return nil, fmt.Errorf("%s.name: %w", f, err)
	}
	invert := h.GetInvertMatch()
	var sm *match.String
	present := false
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err = match.CompileString(s.StringMatch, f+".string_match")
	case *routev3.HeaderMatcher_ExactMatch:
		sm = exact(s.ExactMatch)
	case *routev3.HeaderMatcher_PrefixMatch:
		sm = prefix(s.PrefixMatch)
	case *routev3.HeaderMatcher_PresentMatch:
		present = true
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, e := match.CompileRegex(s.SafeRegexMatch, f+".safe_regex_match")
		if e != nil {
			return nil, e
		}
		return func(q *Request) bool { v, ok := get(q); return (ok && re.MatchString(v)) != invert }, nil
	default:
		return nil, fmt.Errorf("%s: %T is not supported", f, s)
	}
	if err != nil {
		return nil, err
	}
	if present {
		return func(q *Request) bool { _, ok := get(q); return ok != invert }, nil
	}
	return func(q *Request) bool { v, ok := get(q); return (ok && sm.Match(v)) != invert }, nil
}

func headerGetter(name string) (func(*Request) (string, bool), error) {
	switch name {
	case ":method":
		return func(q *Request) (string, bool) { return q.HTTP.Method, true }, nil
	case ":path":
		return func(q *Request) (string, bool) { return q.HTTP.URL.RequestURI(), true }, nil
	case ":authority", "host":
		return func(q *Request) (string, bool) { return q.HTTP.Host, true }, nil
	case ":scheme":
		return func(q *Request) (string, bool) {
			if q.HTTP.TLS != nil {
				return "https", true
			}
			return "http", true
		}, nil
	}
	if strings.HasPrefix(name, ":") {
		return nil, fmt.Errorf("pseudo-header %q is not supported", name)
	}
	canon := http.CanonicalHeaderKey(name)
	return func(q *Request) (string, bool) {
		v, ok := q.HTTP.Header[canon]
		if !ok || len(v) == 0 {
			return "", false
		}
		return strings.Join(v, ","), true
	}, nil
}

func exact(s string) *match.String {
	m, _ := match.CompileString(stringExact(s), "")
	return m
}

func prefix(s string) *match.String {
	m, _ := match.CompileString(stringPrefix(s), "")
	return m
}

// PrincipalOf extracts the peer identity of a request served over mTLS.
func PrincipalOf(r *http.Request) string { return meshtls.Principal(r.TLS) }

// CompileNetwork builds an Engine from the RBAC network filter's config,
// which decides a connection once, after the TLS handshake, on its peer
// identity, addresses, port and SNI. Header and path rules see an empty
// request there (Envoy's network filter has no request either).
func CompileNetwork(c *rbacnet.RBAC, f string) (*Engine, error) {
	if err := protofields.Check(c, f, "stat_prefix", "rules"); err != nil {
		return nil, err
	}
	return Compile(&rbacv3.RBAC{Rules: c.GetRules()}, f)
}

// ConnRequest is what a network RBAC filter sees of a connection.
func ConnRequest(principal string, remote, local netip.AddrPort, sni string) *Request {
	return &Request{HTTP: &http.Request{URL: &url.URL{}, Header: http.Header{}}, Principal: principal, Remote: remote, Local: local, SNI: sni}
}

// metadataPred matches a value of the request's filter state: the filter's
// namespace, then each path key into nested maps.
func metadataPred(m *matcherv3.MetadataMatcher, f string) (pred, error) {
	if m.GetFilter() == "" || len(m.GetPath()) == 0 {
		return nil, fmt.Errorf("%s: filter and path are required", f)
	}
	var keys []string
	for i, seg := range m.GetPath() {
		if seg.GetKey() == "" {
			return nil, fmt.Errorf("%s.path[%d]: only key segments are supported", f, i)
		}
		keys = append(keys, seg.GetKey())
	}
	vm, err := valuePred(m.GetValue(), f+".value")
	if err != nil {
		return nil, err
	}
	filter, invert := m.GetFilter(), m.GetInvert()
	return func(q *Request) bool {
		var v any
		if q.Meta != nil {
			v = q.Meta.Get(filter)
		}
		for _, k := range keys {
			mm, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = mm[k]
		}
		return vm(v) != invert
	}, nil
}

func valuePred(v *matcherv3.ValueMatcher, f string) (func(any) bool, error) {
	switch m := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_PresentMatch:
		want := m.PresentMatch
		return func(x any) bool { return (x != nil) == want }, nil
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := match.CompileString(m.StringMatch, f+".string_match")
		if err != nil {
			return nil, err
		}
		return func(x any) bool { s, ok := x.(string); return ok && sm.Match(s) }, nil
	case *matcherv3.ValueMatcher_BoolMatch:
		want := m.BoolMatch
		return func(x any) bool { b, ok := x.(bool); return ok && b == want }, nil
	case *matcherv3.ValueMatcher_ListMatch:
		in, err := valuePred(m.ListMatch.GetOneOf(), f+".list_match.one_of")
		if err != nil {
			return nil, err
		}
		return func(x any) bool {
			l, ok := x.([]any)
			if !ok {
				return false
			}
			for _, e := range l {
				if in(e) {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, fmt.Errorf("%s: value matcher %T is not supported", f, v.GetMatchPattern())
}

// requestPath is the path url_path matchers see: as the client sent it
// (percent-encoded, after the HCM's normalization), as Envoy matches it and
// as the router and the upstream see it. Matching the decoded form instead
// would let an ALLOW on /public/* admit /public%2F..%2Fadmin, which an
// application decoding %2F serves as /admin.
func requestPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath
	}
	return u.EscapedPath()
}

// MetadataMatcher compiles an Envoy MetadataMatcher over a request's
// dynamic metadata (filters' per-request state), for filters that are
// enabled by it (ext_authz's filter_enabled_metadata).
func MetadataMatcher(m *matcherv3.MetadataMatcher, f string) (func(*httpfilter.Metadata) bool, error) {
	p, err := metadataPred(m, f)
	if err != nil {
		return nil, err
	}
	return func(md *httpfilter.Metadata) bool { return p(&Request{Meta: md}) }, nil
}
