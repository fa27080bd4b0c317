package authz

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	securityapi "istio.io/api/security/v1beta1"

	"mesh.dev/mesh/internal/enforced"
)

// Result is one translated rule; Permission is nil when an ALLOW rule
// allows nobody. Unenforced names the parts that could not be carried out
// (paths relative to the rule, with the reason).
type Result struct {
	Permission *rbacv3.Permission
	Principal  *rbacv3.Principal
	Unenforced []enforced.Finding
}

type ruleCtx struct {
	ns         string // the policy's namespace: bare service accounts live here
	http       bool
	unenforced []enforced.Finding
}

func (c *ruleCtx) fail(path, why string) {
	c.unenforced = append(c.unenforced, enforced.Finding{Path: path, Note: why})
}

// TranslateRule turns one rule of a policy in namespace ns into an Envoy
// RBAC permission and principal, term by term (every field of Source and
// Operation, every `when` key). A term that cannot be carried out on this
// port (an HTTP-only field on TCP, a JWT attribute, a malformed value, a
// field this build does not know) makes an ALLOW rule allow nobody; in a
// deny rule (deny=true) it is dropped, so the rule denies more than
// written, never less.
func TranslateRule(rule *securityapi.Rule, ns string, http, deny bool) Result {
	c := &ruleCtx{ns: ns, http: http}
	// The field table decides which fields are carried out; the terms
	// below translate the enforced ones.
	c.unenforced = append(c.unenforced, notEnforced(rule)...)

	var perms []*rbacv3.Permission // OR over `to`
	for j, to := range rule.GetTo() {
		and := c.operation(to.GetOperation(), fmt.Sprintf("to[%d].operation", j))
		perms = append(perms, andPerm(and))
	}
	var princs []*rbacv3.Principal // OR over `from`
	for j, from := range rule.GetFrom() {
		and := c.source(from.GetSource(), fmt.Sprintf("from[%d].source", j))
		princs = append(princs, andPrinc(and))
	}
	perm := orPerm(perms)
	princ := orPrinc(princs)
	// `when` conditions AND with both sides: connection attributes of the
	// destination are permissions, the rest principals.
	var condPerms []*rbacv3.Permission
	var condPrincs []*rbacv3.Principal
	for k, cond := range rule.GetWhen() {
		p, q := c.condition(cond, fmt.Sprintf("when[%d]", k))
		condPerms = append(condPerms, p...)
		condPrincs = append(condPrincs, q...)
	}
	if len(condPerms) > 0 {
		perm = andPerm(append([]*rbacv3.Permission{perm}, condPerms...))
	}
	if len(condPrincs) > 0 {
		princ = andPrinc(append([]*rbacv3.Principal{princ}, condPrincs...))
	}
	if len(c.unenforced) > 0 && !deny {
		return Result{Unenforced: c.unenforced}
	}
	return Result{Permission: perm, Principal: princ, Unenforced: c.unenforced}
}

// operation translates one `to.operation`: the AND of its fields.
func (c *ruleCtx) operation(op *securityapi.Operation, path string) []*rbacv3.Permission {
	if op == nil {
		return nil
	}
	var and []*rbacv3.Permission
	httpOnly := func(name string, vals, notVals []string, mk func(string) (*rbacv3.Permission, bool)) {
		if len(vals)+len(notVals) == 0 {
			return
		}
		if !c.http {
			c.fail(path+"."+name, "HTTP-only, on a TCP port")
			return
		}
		and = c.permTerms(and, path+"."+name, vals, notVals, mk)
	}
	httpOnly("hosts", op.Hosts, op.NotHosts, func(v string) (*rbacv3.Permission, bool) {
		m := stringMatch(v)
		m.IgnoreCase = true // hosts match case-insensitively
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
			Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}}}, true
	})
	httpOnly("methods", op.Methods, op.NotMethods, func(v string) (*rbacv3.Permission, bool) {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatch(":method", v)}}, true
	})
	httpOnly("paths", op.Paths, op.NotPaths, func(v string) (*rbacv3.Permission, bool) {
		m, ok := pathMatch(v)
		if !ok {
			return nil, false
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: m}}}}, true
	})
	and = c.permTerms(and, path+".ports", op.Ports, op.NotPorts, portPerm)
	return and
}

// source translates one `from.source`: the AND of its fields.
func (c *ruleCtx) source(src *securityapi.Source, path string) []*rbacv3.Principal {
	if src == nil {
		return nil
	}
	var and []*rbacv3.Principal
	and = c.princTerms(and, path+".principals", src.Principals, src.NotPrincipals, principalPrinc)
	and = c.princTerms(and, path+".namespaces", src.Namespaces, src.NotNamespaces, namespacePrinc)
	and = c.princTerms(and, path+".serviceAccounts", src.ServiceAccounts, src.NotServiceAccounts, c.serviceAccountPrinc)
	and = c.princTerms(and, path+".trustDomains", src.TrustDomains, src.NotTrustDomains, trustDomainPrinc)
	and = c.princTerms(and, path+".ipBlocks", src.IpBlocks, src.NotIpBlocks, directIPPrinc)
	and = c.princTerms(and, path+".remoteIpBlocks", src.RemoteIpBlocks, src.NotRemoteIpBlocks, remoteIPPrinc)
	if len(src.RequestPrincipals)+len(src.NotRequestPrincipals) > 0 {
		if !c.http {
			c.fail(path+".requestPrincipals", "HTTP-only, on a TCP port")
		} else {
			and = c.princTerms(and, path+".requestPrincipals", src.RequestPrincipals, src.NotRequestPrincipals, requestPrincipalPrinc)
		}
	}
	return and
}

// AuthnFilter is the filter state namespace mesh-proxy's JWT filter leaves
// Istio's request.auth attributes in (Istio's istio_authn).
const AuthnFilter = "istio_authn"

func authnMatch(keys []string, v *matcherv3.ValueMatcher) *rbacv3.Principal {
	var path []*matcherv3.MetadataMatcher_PathSegment
	for _, k := range keys {
		path = append(path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{Filter: AuthnFilter, Path: path, Value: v}}}
}

func stringValue(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
}

// stringOrListValue matches a string attribute, or a list holding a match.
func stringOrList(keys []string, v string) *rbacv3.Principal {
	s := stringValue(stringMatch(v))
	l := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: stringValue(stringMatch(v))}}}}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{authnMatch(keys, s), authnMatch(keys, l)}}}}
}

// requestPrincipalPrinc matches the verified token's iss/sub.
func requestPrincipalPrinc(v string) (*rbacv3.Principal, bool) {
	if v == "" {
		return nil, false
	}
	return authnMatch([]string{"request.auth.principal"}, stringValue(stringMatch(v))), true
}

// condition translates one `when` entry into permission or principal terms.
func (c *ruleCtx) condition(cond *securityapi.Condition, path string) ([]*rbacv3.Permission, []*rbacv3.Principal) {
	key := cond.GetKey()
	if len(cond.Values)+len(cond.NotValues) == 0 {
		c.fail(path, key+": neither values nor notValues")
		return nil, nil
	}
	kc := enforced.Condition(key)
	switch {
	case !kc.Enforced:
		c.fail(path+".key", key+" "+kc.Why)
		return nil, nil
	case kc.HTTPOnly && !c.http:
		c.fail(path+".key", key+" is HTTP-only, on a TCP port")
		return nil, nil
	}
	switch key {
	case "source.ip":
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, directIPPrinc)
	case "remote.ip":
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, remoteIPPrinc)
	case "source.namespace":
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, namespacePrinc)
	case "source.principal":
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, principalPrinc)
	case "source.serviceAccount":
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, c.serviceAccountPrinc)
	case "destination.ip":
		return c.permTerms(nil, path, cond.Values, cond.NotValues, func(v string) (*rbacv3.Permission, bool) {
			r, ok := ParseCIDR(v)
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: r}}, ok
		}), nil
	case "destination.port":
		return c.permTerms(nil, path, cond.Values, cond.NotValues, portPerm), nil
	case "request.auth.principal", "request.auth.presenter":
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, func(v string) (*rbacv3.Principal, bool) {
			return authnMatch([]string{key}, stringValue(stringMatch(v))), true
		})
	case "request.auth.audiences":
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, func(v string) (*rbacv3.Principal, bool) {
			return stringOrList([]string{key}, v), true
		})
	case "connection.sni":
		return c.permTerms(nil, path, cond.Values, cond.NotValues, func(v string) (*rbacv3.Permission, bool) {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: stringMatch(v)}}, true
		}), nil
	}
	if claims, ok := enforced.ClaimPath(key); ok {
		keys := append([]string{"request.auth.claims"}, claims...)
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, func(v string) (*rbacv3.Principal, bool) {
			return stringOrList(keys, v), true
		})
	}
	if name, ok := enforced.HeaderConditionName(key); ok {
		return nil, c.princTerms(nil, path, cond.Values, cond.NotValues, func(v string) (*rbacv3.Principal, bool) {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: headerMatch(name, v)}}, true
		})
	}
	// Condition said enforced but no translation exists here: a test
	// holds the two together; at run time refuse rather than widen.
	c.fail(path+".key", key+" has no translation")
	return nil, nil
}

// permTerms appends the AND terms of one field: an OR of its values and a
// NOT per negative value. A value that does not parse makes the whole field
// unenforced (so no half of it narrows a DENY).
func (c *ruleCtx) permTerms(and []*rbacv3.Permission, path string, vals, notVals []string, mk func(string) (*rbacv3.Permission, bool)) []*rbacv3.Permission {
	if len(vals)+len(notVals) == 0 {
		return and
	}
	var or, nots []*rbacv3.Permission
	for _, v := range vals {
		p, ok := mk(v)
		if !ok {
			c.fail(path, fmt.Sprintf("value %q is not valid", v))
			return and
		}
		or = append(or, p)
	}
	for _, v := range notVals {
		p, ok := mk(v)
		if !ok {
			c.fail(path, fmt.Sprintf("value %q is not valid", v))
			return and
		}
		nots = append(nots, &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}})
	}
	if len(or) > 0 {
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}})
	}
	return append(and, nots...)
}

func (c *ruleCtx) princTerms(and []*rbacv3.Principal, path string, vals, notVals []string, mk func(string) (*rbacv3.Principal, bool)) []*rbacv3.Principal {
	if len(vals)+len(notVals) == 0 {
		return and
	}
	var or, nots []*rbacv3.Principal
	for _, v := range vals {
		p, ok := mk(v)
		if !ok {
			c.fail(path, fmt.Sprintf("value %q is not valid", v))
			return and
		}
		or = append(or, p)
	}
	for _, v := range notVals {
		p, ok := mk(v)
		if !ok {
			c.fail(path, fmt.Sprintf("value %q is not valid", v))
			return and
		}
		nots = append(nots, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}})
	}
	if len(or) > 0 {
		and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: or}}})
	}
	return append(and, nots...)
}

func portPerm(v string) (*rbacv3.Permission, bool) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return nil, false
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}, true
}

// principalPrinc matches a peer identity written without the scheme
// ("cluster.local/ns/x/sa/y"), with Istio's "*", "x*", "*x" forms.
func principalPrinc(v string) (*rbacv3.Principal, bool) {
	var m *matcherv3.StringMatcher
	switch {
	case v == "":
		return nil, false
	case v == "*":
		m = regexMatch(".+")
	case strings.HasPrefix(v, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
	case strings.HasSuffix(v, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + strings.TrimSuffix(v, "*")}}
	default:
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://" + v}}
	}
	return authenticated(m), true
}

// globSegment is the regex for one SPIFFE path segment written with
// Istio's "*", "x*", "*x" forms.
func globSegment(v string) string {
	switch {
	case v == "*":
		return `[^/]+`
	case strings.HasPrefix(v, "*"):
		return `[^/]*` + regexQuote(v[1:])
	case strings.HasSuffix(v, "*"):
		return regexQuote(strings.TrimSuffix(v, "*")) + `[^/]*`
	}
	return regexQuote(v)
}

func namespacePrinc(v string) (*rbacv3.Principal, bool) {
	if v == "" || strings.Contains(v, "/") {
		return nil, false
	}
	return authenticated(regexMatch(`spiffe://[^/]+/ns/` + globSegment(v) + `/sa/[^/]+`)), true
}

func trustDomainPrinc(v string) (*rbacv3.Principal, bool) {
	if v == "" || strings.Contains(v, "/") {
		return nil, false
	}
	return authenticated(regexMatch(`spiffe://` + globSegment(v) + `/.+`)), true
}

// serviceAccountPrinc matches "<ns>/<sa>", or "<sa>" in the policy's
// namespace; Istio allows no wildcard here.
func (c *ruleCtx) serviceAccountPrinc(v string) (*rbacv3.Principal, bool) {
	ns, sa, found := strings.Cut(v, "/")
	if !found {
		ns, sa = c.ns, v
	}
	if ns == "" || sa == "" || strings.ContainsAny(v, "*") || strings.Contains(sa, "/") {
		return nil, false
	}
	return authenticated(regexMatch(`spiffe://[^/]+/ns/` + regexQuote(ns) + `/sa/` + regexQuote(sa))), true
}

func directIPPrinc(v string) (*rbacv3.Principal, bool) {
	r, ok := ParseCIDR(v)
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: r}}, ok
}

// remoteIPPrinc is remote.ip / remoteIpBlocks. mesh-proxy trusts no
// X-Forwarded-For hops, so the remote address is the direct peer's.
func remoteIPPrinc(v string) (*rbacv3.Principal, bool) {
	r, ok := ParseCIDR(v)
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: r}}, ok
}

// ParseCIDR reads an address or a prefix as an Envoy CIDR range; anything
// else is refused.
func ParseCIDR(v string) (*corev3.CidrRange, bool) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}, true
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil, false
	}
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}, true
}

// pathMatch is a `paths` value: Istio's "*" forms, or an Envoy URI
// template with {*} (one segment) and {**} (the rest, last operator only).
func pathMatch(v string) (*matcherv3.StringMatcher, bool) {
	if !strings.ContainsAny(v, "{}") {
		return stringMatch(v), true
	}
	var b strings.Builder
	rest := v
	sawRest := false
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		lit := rest
		if i >= 0 {
			lit = rest[:i]
		}
		if strings.ContainsAny(lit, "*{}") || (sawRest && i >= 0) {
			return nil, false
		}
		b.WriteString(regexQuote(lit))
		if i < 0 {
			break
		}
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "{**}"):
			b.WriteString(`.*`)
			rest = rest[4:]
			sawRest = true
		case strings.HasPrefix(rest, "{*}"):
			b.WriteString(`[^/]+`)
			rest = rest[3:]
		default:
			return nil, false
		}
	}
	return regexMatch(b.String()), true
}

func regexMatch(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

func andPerm(and []*rbacv3.Permission) *rbacv3.Permission {
	switch len(and) {
	case 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	case 1:
		return and[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}}
}

func orPerm(or []*rbacv3.Permission) *rbacv3.Permission {
	switch len(or) {
	case 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	case 1:
		return or[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}}
}

func andPrinc(and []*rbacv3.Principal) *rbacv3.Principal {
	switch len(and) {
	case 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	case 1:
		return and[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: and}}}
}

func orPrinc(or []*rbacv3.Principal) *rbacv3.Principal {
	switch len(or) {
	case 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	case 1:
		return or[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: or}}}
}

// stringMatch follows Istio's convention: "*" alone matches anything
// present, "*x" is a suffix, "x*" a prefix, otherwise exact.
func stringMatch(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return regexMatch(".+")
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(v, "*")}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func headerMatch(name, v string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatch(v)}}
}

func regexQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
