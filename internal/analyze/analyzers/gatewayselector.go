package analyzers

import (
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// GatewaySelectors reports Gateways whose selector matches no workload in
// any namespace (IST0101, "Referenced selector not found"): no gateway
// proxy serves them, so their servers listen nowhere.
//
// It judges only when the snapshot holds running Pods, that is in live
// analysis or when pods are among the files. Files alone seldom carry the
// gateway's own Deployment (it comes from the mesh install), and Istio's
// report of every such Gateway in file-only runs is a known false alarm
// (istio/istio#40861).
type GatewaySelectors struct{}

// Metadata describes the analyzer.
func (*GatewaySelectors) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "gateway.SelectorAnalyzer", Description: "Checks that each Gateway's selector matches gateway workloads (when pods are known)",
		Codes: []*analyze.MessageType{analyze.ReferencedResourceNotFound}}
}

// Analyze runs the checks.
func (*GatewaySelectors) Analyze(ctx *analyze.Context) {
	if len(ctx.ByKind("Pod")) == 0 {
		return
	}
	for _, r := range ctx.ByKind("Gateway") {
		gw, ok := r.Object.(*networking.Gateway)
		if !ok || r.Group != "networking.istio.io" || len(gw.Spec.Selector) == 0 {
			continue
		}
		// Pilot binds a Gateway to matching workloads of every namespace.
		if len(ctx.SelectWorkloads("", gw.Spec.Selector)) > 0 {
			continue
		}
		ctx.Report(analyze.ReferencedResourceNotFound, r, "spec.selector",
			"Referenced selector not found: %q: no gateway workload in any namespace has these labels, so no proxy serves this Gateway", selectorKey(gw.Spec.Selector))
	}
}
