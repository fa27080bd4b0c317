package analyzers

import (
	"sort"

	security "istio.io/client-go/pkg/apis/security/v1"
	telemetry "istio.io/client-go/pkg/apis/telemetry/v1"

	"mesh.dev/mesh/internal/analyze"
)

// IneffectiveSelectors reports policies whose workload selector matches the
// pods of a Kubernetes Gateway API Gateway (IST0166). Istio attaches
// policies to such Gateways only through targetRefs and ignores a selector
// there, so the policy a user reads does not apply; with targetRefs set
// the selector is not what decides, and nothing is reported.
type IneffectiveSelectors struct{}

// gatewayNameLabel is the label the Gateway API controller puts on the
// pods of the Gateway it deploys.
const gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"

// Metadata describes the analyzer.
func (*IneffectiveSelectors) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "k8sgateway.SelectorAnalyzer", Description: "Checks policy selectors do not target Kubernetes Gateway API Gateway pods, where only targetRefs apply",
		Codes: []*analyze.MessageType{analyze.IneffectiveSelector}}
}

// Analyze runs the checks.
func (*IneffectiveSelectors) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.Resources {
		var sel map[string]string
		var targeted bool
		switch o := r.Object.(type) {
		case *security.AuthorizationPolicy:
			sel, targeted = o.Spec.GetSelector().GetMatchLabels(), o.Spec.GetTargetRef() != nil || len(o.Spec.GetTargetRefs()) > 0
		case *security.RequestAuthentication:
			sel, targeted = o.Spec.GetSelector().GetMatchLabels(), o.Spec.GetTargetRef() != nil || len(o.Spec.GetTargetRefs()) > 0
		case *telemetry.Telemetry:
			sel, targeted = o.Spec.GetSelector().GetMatchLabels(), o.Spec.GetTargetRef() != nil || len(o.Spec.GetTargetRefs()) > 0
		default:
			continue
		}
		if len(sel) == 0 || targeted {
			continue
		}
		gateways := map[string]bool{}
		for _, w := range ctx.SelectWorkloads(r.Namespace, sel) {
			if name := w.Labels[gatewayNameLabel]; name != "" {
				gateways[name] = true
			}
		}
		names := make([]string, 0, len(gateways))
		for name := range gateways {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ctx.Report(analyze.IneffectiveSelector, r, "spec.selector.matchLabels",
				"Ineffective selector on Kubernetes Gateway %s. Use the TargetRef field instead.", name)
		}
	}
}
