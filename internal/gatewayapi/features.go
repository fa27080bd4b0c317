package gatewayapi

import (
	"sort"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// supported are the Gateway API features mesh carries out, as the
// conformance suite names them: core features of the Gateway, HTTPRoute and
// GRPCRoute, and the extended ones whose conformance tests pass
// (docs/conformance/). Extended features whose tests fail are not declared
// until they pass: HTTPRouteBackendProtocolH2C and
// HTTPRouteBackendProtocolWebSocket, whose tests dial the Gateway's
// cluster IP with clients of their own, which the sandbox (no kube-proxy)
// does not route. docs/gateway-api.md lists what is not done.
var supported = []string{
	"Gateway",
	"GRPCRoute",
	"HTTPRoute",
	"HTTPRouteHostRewrite",
	"HTTPRouteQueryParamMatching",
	"HTTPRouteRequestTimeout",
	"HTTPRouteBackendTimeout",
	"HTTPRouteResponseHeaderModification",
	"HTTPRouteSchemeRedirect",
	"HTTPRoutePortRedirect",
	"HTTPRouteMethodMatching",
	"HTTPRoutePathRewrite",
	"HTTPRoutePathRedirect",
	"HTTPRouteRequestMirror",
	"HTTPRouteRequestMultipleMirrors",
	"HTTPRouteRequestPercentageMirror",
	"GatewayPort8080",
	"HTTPRoute303RedirectStatusCode",
	"HTTPRoute307RedirectStatusCode",
	"HTTPRoute308RedirectStatusCode",
	"HTTPRouteBackendRequestHeaderModification",
	"HTTPRouteNamedRouteRule",
	"GRPCRouteNamedRouteRule",
	"HTTPRouteParentRefPort",
	"HTTPRouteDestinationPortMatching",
	"GatewayInfrastructure",
	"GatewayHTTPListenerIsolation",
	"ReferenceGrant",
}

// SupportedFeatures is the GatewayClass status list, sorted by name as the
// spec asks.
func SupportedFeatures() []gwv1.SupportedFeature {
	names := append([]string(nil), supported...)
	sort.Strings(names)
	out := make([]gwv1.SupportedFeature, len(names))
	for i, n := range names {
		out[i] = gwv1.SupportedFeature{Name: gwv1.FeatureName(n)}
	}
	return out
}
