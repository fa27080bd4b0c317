package xds

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshapi "istio.io/api/mesh/v1alpha1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"mesh.dev/mesh/internal/authz"
)

// Names istiod uses to tie CUSTOM policies to the ext_authz filter: the
// shadow RBAC filter's policies are named with customPolicyPrefix, and
// ext_authz runs only when the shadow engine's effective policy id (in the
// request's dynamic metadata) has that prefix.
const (
	customStatPrefix   = "istio_ext_authz_"
	customPolicyPrefix = "istio-ext-authz-"
	extAuthzFilterName = "envoy.filters.http.ext_authz"
	defaultAuthzWait   = 600 * time.Second // Istio's default provider timeout
)

// customFilters are the HTTP filters carrying out a workload's CUSTOM
// policies, as istiod writes them: an RBAC filter whose shadow rules are
// the policies' rules (deciding nothing, recording which policy selects
// the request), then the provider's ext_authz filter, enabled only for
// requests a CUSTOM rule selected. A provider pilot cannot use (not in
// meshConfig.extensionProviders, not an ext_authz kind, its service
// unknown, a bad statusOnError, or several providers on one workload)
// makes an RBAC filter that denies every request instead: fail closed.
func (pc *PushContext) customFilters(custom []*securityv1.AuthorizationPolicy) []*hcmv3.HttpFilter {
	if len(custom) == 0 {
		return nil
	}
	ea, err := pc.extAuthz(custom)
	if err != nil {
		return []*hcmv3.HttpFilter{denyAllFilter()}
	}
	shadow := buildRBACPrefixed(custom, rbacv3.RBAC_DENY, true, customPolicyPrefix)
	return []*hcmv3.HttpFilter{
		{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: mustAny(&rbachttp.RBAC{ShadowRules: shadow, ShadowRulesStatPrefix: customStatPrefix}),
		}},
		{Name: extAuthzFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(ea)}},
	}
}

// denyAllFilter refuses every request: what a CUSTOM policy whose provider
// cannot be used becomes, as in istiod.
func denyAllFilter() *hcmv3.HttpFilter {
	any := []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}
	who := []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{
		TypedConfig: mustAny(&rbachttp.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
			"default-deny-due-to-bad-CUSTOM-action": {Permissions: any, Principals: who},
		}}}),
	}}
}

func (pc *PushContext) extAuthz(custom []*securityv1.AuthorizationPolicy) (*extauthzv3.ExtAuthz, error) {
	var names []string
	for _, ap := range custom {
		names = append(names, ap.Spec.GetProvider().GetName())
	}
	known := func(ns, host string) bool {
		svc := pc.Snap.ServiceByHost(host)
		return svc != nil && (ns == "" || svc.Namespace == ns)
	}
	p, host, err := authz.ResolveProvider(pc.Snap.Mesh, names, known)
	if err != nil {
		return nil, err
	}
	enabled := &matcherv3.MetadataMatcher{
		Filter: "envoy.filters.http.rbac",
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: customStatPrefix + "shadow_effective_policy_id"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "istio-ext-authz"}}}},
	}
	ea := &extauthzv3.ExtAuthz{TransportApiVersion: corev3.ApiVersion_V3, FilterEnabledMetadata: enabled}
	if h := p.GetEnvoyExtAuthzHttp(); h != nil {
		status, err := statusOnError(h.GetStatusOnError())
		if err != nil {
			return nil, err
		}
		ea.FailureModeAllow, ea.StatusOnError = h.GetFailOpen(), status
		req := &extauthzv3.AuthorizationRequest{}
		keys := make([]string, 0, len(h.GetIncludeAdditionalHeadersInCheck()))
		for k := range h.GetIncludeAdditionalHeadersInCheck() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			req.HeadersToAdd = append(req.HeadersToAdd, &corev3.HeaderValue{Key: k, Value: h.GetIncludeAdditionalHeadersInCheck()[k]})
		}
		in := h.GetIncludeRequestHeadersInCheck()
		if len(in) == 0 {
			in = h.GetIncludeHeadersInCheck() //nolint:staticcheck // the older name, still honoured
		}
		ea.AllowedHeaders = headerMatchers(in)
		ea.Services = &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
			ServerUri: &corev3.HttpUri{Uri: "http://" + host, Timeout: timeoutOr(h.GetTimeout().AsDuration(), h.GetTimeout() != nil),
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: OutboundClusterName(h.GetPort(), "", host)}},
			PathPrefix:           h.GetPathPrefix(),
			AuthorizationRequest: req,
			AuthorizationResponse: &extauthzv3.AuthorizationResponse{
				AllowedUpstreamHeaders:        headerMatchers(h.GetHeadersToUpstreamOnAllow()),
				AllowedClientHeaders:          headerMatchers(h.GetHeadersToDownstreamOnDeny()),
				AllowedClientHeadersOnSuccess: headerMatchers(h.GetHeadersToDownstreamOnAllow()),
			},
		}}
		ea.WithRequestBody = bodySettings(h.GetIncludeRequestBodyInCheck())
		return ea, nil
	}
	g := p.GetEnvoyExtAuthzGrpc()
	status, err := statusOnError(g.GetStatusOnError())
	if err != nil {
		return nil, err
	}
	ea.FailureModeAllow, ea.StatusOnError = g.GetFailOpen(), status
	ea.Services = &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
			ClusterName: OutboundClusterName(g.GetPort(), "", host), Authority: host}},
		Timeout: timeoutOr(g.GetTimeout().AsDuration(), g.GetTimeout() != nil),
	}}
	ea.WithRequestBody = bodySettings(g.GetIncludeRequestBodyInCheck())
	return ea, nil
}

func statusOnError(s string) (*typev3.HttpStatus, error) {
	if s == "" {
		return &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 200 || n > 599 {
		return nil, fmt.Errorf("statusOnError %q is not an HTTP status", s)
	}
	return &typev3.HttpStatus{Code: typev3.StatusCode(n)}, nil
}

func timeoutOr(d time.Duration, set bool) *durationpb.Duration {
	if !set {
		d = defaultAuthzWait
	}
	return durationpb.New(d)
}

// headerMatchers turns Istio's header list syntax (exact, "prefix*",
// "*suffix") into case-insensitive matchers; nil for none.
func headerMatchers(hs []string) *matcherv3.ListStringMatcher {
	if len(hs) == 0 {
		return nil
	}
	l := &matcherv3.ListStringMatcher{}
	for _, h := range hs {
		m := &matcherv3.StringMatcher{IgnoreCase: true}
		switch {
		case h == "*":
			m.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}
		case strings.HasSuffix(h, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(h, "*")}
		case strings.HasPrefix(h, "*"):
			m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(h, "*")}
		default:
			m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: h}
		}
		l.Patterns = append(l.Patterns, m)
	}
	return l
}

func bodySettings(b *meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationRequestBody) *extauthzv3.BufferSettings {
	if b == nil {
		return nil
	}
	return &extauthzv3.BufferSettings{MaxRequestBytes: b.GetMaxRequestBytes(), AllowPartialMessage: b.GetAllowPartialMessage(), PackAsBytes: b.GetPackAsBytes()}
}
