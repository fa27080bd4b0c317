package xds

import (
	"net/netip"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rawbuffer "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/labels"

	"mesh.dev/mesh/internal/authz"
	"mesh.dev/mesh/internal/pilot/model"
)

// MTLSMode is the effective PeerAuthentication mode for a workload port.
type MTLSMode int

// Inbound mTLS modes.
const (
	MTLSPermissive MTLSMode = iota
	MTLSStrict
	MTLSDisable
)

func sdsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{
		Name: name,
		SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		},
	}
}

func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

func rawBufferSocket() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.raw_buffer",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbuffer.RawBuffer{})},
	}
}

// meshCommonTLS presents the workload certificate and trusts the mesh root.
func meshCommonTLS(alpn ...string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef(SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: sdsRef(SecretRootCA),
		},
		AlpnProtocols: alpn,
	}
}

func meshUpstreamTLS(sni string) *tlsv3.UpstreamTlsContext {
	return &tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: meshCommonTLS("istio-peer-exchange", "istio")}
}

func meshDownstreamTLS() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		CommonTlsContext:         meshCommonTLS("h2", "http/1.1"),
		RequireClientCertificate: wrapperspb.Bool(true),
	}
}

// mtlsMode resolves PeerAuthentication for a workload's target port:
// workload policy (port-level first) over namespace policy over mesh policy.
func (pc *PushContext) mtlsMode(ns string, lbls map[string]string, port uint32) MTLSMode {
	var workload, namespace, mesh *securityv1.PeerAuthentication
	for _, pa := range pc.Snap.PeerAuthentications {
		switch {
		case pa.Namespace == ns && pa.Spec.Selector != nil && len(pa.Spec.Selector.MatchLabels) > 0:
			if labels.SelectorFromSet(pa.Spec.Selector.MatchLabels).Matches(labels.Set(lbls)) {
				workload = pa
			}
		case pa.Namespace == ns:
			namespace = pa
		case pa.Namespace == pc.Snap.RootNamespace && pa.Spec.Selector == nil:
			mesh = pa
		}
	}
	if workload != nil {
		if m, ok := workload.Spec.PortLevelMtls[port]; ok && m.Mode != securityapi.PeerAuthentication_MutualTLS_UNSET {
			return fromPAMode(m.Mode)
		}
	}
	for _, pa := range []*securityv1.PeerAuthentication{workload, namespace, mesh} {
		if pa != nil && pa.Spec.Mtls != nil && pa.Spec.Mtls.Mode != securityapi.PeerAuthentication_MutualTLS_UNSET {
			return fromPAMode(pa.Spec.Mtls.Mode)
		}
	}
	return MTLSPermissive
}

func fromPAMode(m securityapi.PeerAuthentication_MutualTLS_Mode) MTLSMode {
	switch m {
	case securityapi.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	case securityapi.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	}
	return MTLSPermissive
}

// authzPolicies returns the ALLOW and DENY policies that apply to a workload.
func (pc *PushContext) authzPolicies(ns string, lbls map[string]string) (allow, deny []*securityv1.AuthorizationPolicy) {
	for _, ap := range pc.Snap.AuthorizationPolicies {
		if ap.Namespace != ns && ap.Namespace != pc.Snap.RootNamespace {
			continue
		}
		if sel := ap.Spec.Selector; sel != nil && len(sel.MatchLabels) > 0 &&
			!labels.SelectorFromSet(sel.MatchLabels).Matches(labels.Set(lbls)) {
			continue
		}
		switch ap.Spec.Action {
		case securityapi.AuthorizationPolicy_ALLOW:
			allow = append(allow, ap)
		case securityapi.AuthorizationPolicy_DENY:
			deny = append(deny, ap)
		}
	}
	return allow, deny
}

// buildRBAC translates policies of one action into Envoy RBAC. For TCP
// (http=false) rules needing HTTP attributes cannot match: ALLOW rules with
// them are dropped, DENY rules keep only their TCP-level conditions, erring
// towards denying.
func buildRBAC(policies []*securityv1.AuthorizationPolicy, action rbacv3.RBAC_Action, http bool) *rbacv3.RBAC {
	r := &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
	for _, ap := range policies {
		for i, rule := range ap.Spec.Rules {
			perm, princ, ok := translateRule(rule, http, action == rbacv3.RBAC_DENY)
			if !ok {
				continue
			}
			r.Policies["ns["+ap.Namespace+"]-policy["+ap.Name+"]-rule["+strconv.Itoa(i)+"]"] = &rbacv3.Policy{
				Permissions: []*rbacv3.Permission{perm},
				Principals:  []*rbacv3.Principal{princ},
			}
		}
	}
	return r
}

func translateRule(rule *securityapi.Rule, http, deny bool) (*rbacv3.Permission, *rbacv3.Principal, bool) {
	// An ALLOW rule that pilot can only translate in part would allow more
	// than it says, so it allows nothing; a DENY rule translated in part
	// denies more than it says, which errs the safe way.
	if !deny && len(authz.Unsupported(rule, http)) > 0 {
		return nil, nil, false
	}
	var perms []*rbacv3.Permission // AND of ORs
	for _, to := range rule.To {
		op := to.Operation
		if op == nil {
			continue
		}
		var and []*rbacv3.Permission
		httpOnly := len(op.Methods)+len(op.Paths)+len(op.Hosts)+len(op.NotMethods)+len(op.NotPaths)+len(op.NotHosts) > 0
		if httpOnly && !http {
			if !deny {
				return nil, nil, false
			}
		} else {
			and = appendOr(and, op.Methods, op.NotMethods, func(v string) *rbacv3.Permission {
				return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatch(":method", v)}}
			})
			and = appendOr(and, op.Paths, op.NotPaths, func(v string) *rbacv3.Permission {
				return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
					Rule: &matcherv3.PathMatcher_Path{Path: stringMatch(v)},
				}}}
			})
			and = appendOr(and, op.Hosts, op.NotHosts, func(v string) *rbacv3.Permission {
				return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatch(":authority", v)}}
			})
		}
		and = appendOr(and, op.Ports, op.NotPorts, func(v string) *rbacv3.Permission {
			n, _ := strconv.ParseUint(v, 10, 32)
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
		})
		perms = append(perms, andPerm(and))
	}
	perm := &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	if len(perms) == 1 {
		perm = perms[0]
	} else if len(perms) > 1 {
		perm = &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: perms}}}
	}

	var princs []*rbacv3.Principal
	for _, from := range rule.From {
		src := from.Source
		if src == nil {
			continue
		}
		var and []*rbacv3.Principal
		and = appendOrP(and, src.Principals, src.NotPrincipals, func(v string) *rbacv3.Principal {
			return authenticated(stringMatch("spiffe://" + v))
		})
		and = appendOrP(and, src.Namespaces, src.NotNamespaces, func(v string) *rbacv3.Principal {
			return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
				Regex: `spiffe://[^/]+/ns/` + regexQuote(v) + `/sa/.*`,
			}}})
		})
		and = appendOrP(and, src.IpBlocks, src.NotIpBlocks, func(v string) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr(v)}}
		})
		if len(and) == 0 {
			and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}})
		}
		princs = append(princs, &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: and}}})
	}
	for _, cond := range rule.When {
		if !http && strings.HasPrefix(cond.Key, "request.") && !deny {
			return nil, nil, false
		}
	}
	princ := &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	if len(princs) == 1 {
		princ = princs[0]
	} else if len(princs) > 1 {
		princ = &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: princs}}}
	}
	for _, cond := range rule.When {
		if m := conditionPrincipal(cond, http); m != nil {
			princ = &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{princ, m}}}}
		}
	}
	return perm, princ, true
}

// conditionPrincipal translates the `when` keys pilot understands.
func conditionPrincipal(c *securityapi.Condition, http bool) *rbacv3.Principal {
	var mk func(string) *rbacv3.Principal
	switch {
	case c.Key == "source.ip":
		mk = func(v string) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr(v)}}
		}
	case c.Key == "source.namespace":
		mk = func(v string) *rbacv3.Principal {
			return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
				Regex: `spiffe://[^/]+/ns/` + regexQuote(v) + `/sa/.*`,
			}}})
		}
	case c.Key == "source.principal":
		mk = func(v string) *rbacv3.Principal { return authenticated(stringMatch("spiffe://" + v)) }
	case http && strings.HasPrefix(c.Key, "request.headers[") && strings.HasSuffix(c.Key, "]"):
		name := strings.TrimSuffix(strings.TrimPrefix(c.Key, "request.headers["), "]")
		mk = func(v string) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: headerMatch(name, v)}}
		}
	default:
		return nil // authz.KnownCondition is false for it
	}
	var and []*rbacv3.Principal
	and = appendOrP(and, c.Values, c.NotValues, mk)
	if len(and) == 0 {
		return nil
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: and}}}
}

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

func andPerm(and []*rbacv3.Permission) *rbacv3.Permission {
	if len(and) == 0 {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}}
}

func appendOr(and []*rbacv3.Permission, vals, notVals []string, mk func(string) *rbacv3.Permission) []*rbacv3.Permission {
	if len(vals) > 0 {
		var or []*rbacv3.Permission
		for _, v := range vals {
			or = append(or, mk(v))
		}
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: or}}})
	}
	for _, v := range notVals {
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: mk(v)}})
	}
	return and
}

func appendOrP(and []*rbacv3.Principal, vals, notVals []string, mk func(string) *rbacv3.Principal) []*rbacv3.Principal {
	if len(vals) > 0 {
		var or []*rbacv3.Principal
		for _, v := range vals {
			or = append(or, mk(v))
		}
		and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: or}}})
	}
	for _, v := range notVals {
		and = append(and, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: mk(v)}})
	}
	return and
}

// stringMatch follows Istio's convention: "*" alone matches anything,
// "x*" is a prefix, "*x" a suffix, otherwise exact.
func stringMatch(v string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".+"}}}
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(v, "*")}}
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func headerMatch(name, v string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatch(v)}}
}

func cidr(v string) *corev3.CidrRange {
	if p, err := netip.ParsePrefix(v); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
	}
	bits := 32
	if a, err := netip.ParseAddr(v); err == nil && a.Is6() {
		bits = 128
	}
	return &corev3.CidrRange{AddressPrefix: v, PrefixLen: wrapperspb.UInt32(uint32(bits))}
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

// spiffeID is the identity of a service account.
func spiffeID(ns, sa string) string {
	return "spiffe://" + model.DomainSuffix + "/ns/" + ns + "/sa/" + sa
}
