package gatewayconformance

import (
	"sort"

	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

// Profiles are the conformance profiles the run reports on.
var Profiles = []suite.ConformanceProfileName{
	suite.GatewayHTTPConformanceProfileName,
}

// Skips are the suite's tests mesh does not pass yet, each with the
// reason: the one place a skipped test is listed (docs/conformance/
// README.md points here). The features that select the suite's tests are
// those GatewayClass mesh declares in status.supportedFeatures
// (internal/gatewayapi/features.go); a test of a declared feature that
// fails is listed here, never declared passing.
var Skips = map[string]string{
	// Gateway core.
	"GatewayInvalidTLSConfiguration": "a listener whose certificateRef names a missing or malformed Secret stays ResolvedRefs=True: " +
		"pilot checks the reference's kind and ReferenceGrant, not the Secret itself (it does not watch Secrets in every namespace)",
	"GatewayWithAttachedRoutes":     "listener attachedRoutes counts routes that are not Accepted by that listener (expected 2, got 3)",
	"HTTPRouteHostnameIntersection": "listener attachedRoutes counts routes whose hostnames do not intersect the listener's (expected 2, got 5)",
	"HTTPRouteHTTPSListener": "the gateway pod refuses connections on the HTTPS listener's port 443 " +
		"(the certificateRefs Secret in the Gateway's namespace is not served to the router)",
	// HTTPRoute core.
	"HTTPRouteServiceTypes": "backendRefs to a headless Service or to a Service with hand-made EndpointSlices answer 503: " +
		"pilot has no endpoints for them",
	// GRPCRoute core (profile GATEWAY-GRPC, not reported yet).
	"GRPCExactMethodMatching":           "not passed yet: first run had the suite's gRPC client dial the cluster IP directly; re-run with the service dialer pending",
	"GRPCRouteHeaderMatching":           "not passed yet: first run had the suite's gRPC client dial the cluster IP directly; re-run with the service dialer pending",
	"GRPCRouteListenerHostnameMatching": "not passed yet: first run had the suite's gRPC client dial the cluster IP directly; re-run with the service dialer pending",
	"GRPCRouteWeight":                   "not passed yet: first run had the suite's gRPC client dial the cluster IP directly; re-run with the service dialer pending",
}

// Skipped are the names of Skips, sorted.
func Skipped() []string {
	out := make([]string, 0, len(Skips))
	for n := range Skips {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
