package gatewayconformance

import (
	"sort"

	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

// Profiles are the conformance profiles the run reports on.
var Profiles = []suite.ConformanceProfileName{
	suite.GatewayHTTPConformanceProfileName,
	suite.GatewayGRPCConformanceProfileName,
}

// Skips are the suite's tests mesh does not pass yet, each with the
// reason: the one place a skipped test is listed (docs/conformance/
// README.md points here). The features that select the suite's tests are
// those GatewayClass mesh declares in status.supportedFeatures
// (internal/gatewayapi/features.go); a test of a declared feature that
// fails is listed here, never declared passing.
var Skips = map[string]string{}

// Skipped are the names of Skips, sorted.
func Skipped() []string {
	out := make([]string, 0, len(Skips))
	for n := range Skips {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
