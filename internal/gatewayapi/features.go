package gatewayapi

import (
	"sort"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// supported are the Gateway API features mesh carries out, as the
// conformance suite names them: core features of the Gateway, HTTPRoute and
// GRPCRoute, and the extended ones translated here. docs/gateway-api.md
// lists what is not.
var supported = []string{
	"Gateway",
	"GRPCRoute",
	"HTTPRoute",
	"HTTPRouteHostRewrite",
	"HTTPRouteMethodMatching",
	"HTTPRoutePathRewrite",
	"HTTPRouteQueryParamMatching",
	"HTTPRouteRequestMirror",
	"HTTPRouteRequestMultipleMirrors",
	"HTTPRouteRequestTimeout",
	"HTTPRouteBackendTimeout",
	"HTTPRouteResponseHeaderModification",
	"HTTPRouteSchemeRedirect",
	"HTTPRoutePortRedirect",
	"HTTPRoutePathRedirect",
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
