package analyzers

import (
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// DestinationRuleHosts reports DestinationRules whose host is no known
// Service or ServiceEntry (IST0174).
type DestinationRuleHosts struct{}

// Metadata describes the analyzer.
func (*DestinationRuleHosts) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "destinationrule.UnknownHost", Description: "Checks that DestinationRule hosts are known services",
		Codes: []*analyze.MessageType{analyze.UnknownDestinationRuleHost}}
}

// Analyze runs the checks.
func (*DestinationRuleHosts) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("DestinationRule") {
		dr, ok := r.Object.(*networking.DestinationRule)
		if !ok || dr.Spec.Host == "" {
			continue
		}
		if !ctx.AnyHostMatching(dr.Spec.Host, r.Namespace) {
			ctx.Report(analyze.UnknownDestinationRuleHost, r, "spec.host",
				"The host %s defined in the DestinationRule does not match any services in the mesh: it is not a known Service or ServiceEntry host", dr.Spec.Host)
		}
	}
}
