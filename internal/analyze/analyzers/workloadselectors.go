package analyzers

import (
	"mesh.dev/mesh/internal/analyze"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"
)

// WorkloadSelectors reports policies whose workload selector matches no
// workload (IST0127).
type WorkloadSelectors struct{}

// Metadata describes the analyzer.
func (*WorkloadSelectors) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "selector.NoWorkloads", Description: "Checks that workload selectors of Sidecars and security policies match workloads",
		Codes: []*analyze.MessageType{analyze.NoMatchingWorkloadsFound}}
}

// Analyze runs the checks.
func (*WorkloadSelectors) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.Resources {
		var sel map[string]string
		field := "spec.selector.matchLabels"
		switch o := r.Object.(type) {
		case *networking.Sidecar:
			sel, field = o.Spec.GetWorkloadSelector().GetLabels(), "spec.workloadSelector.labels"
		case *security.AuthorizationPolicy:
			sel = o.Spec.GetSelector().GetMatchLabels()
		case *security.RequestAuthentication:
			sel = o.Spec.GetSelector().GetMatchLabels()
		case *security.PeerAuthentication:
			sel = o.Spec.GetSelector().GetMatchLabels()
		default:
			continue
		}
		if len(sel) == 0 {
			continue
		}
		ns := r.Namespace
		if ns == ctx.Mesh.Root() {
			ns = "" // a selector in the root namespace applies across the mesh
		}
		if len(ctx.SelectWorkloads(ns, sel)) > 0 || workloadEntriesMatch(ctx, ns, sel) {
			continue
		}
		ctx.Report(analyze.NoMatchingWorkloadsFound, r, field,
			"No matching workloads for this resource with the following labels: %s (in namespace %q), so this %s has no effect", selectorKey(sel), r.Namespace, r.Kind)
	}
}

func workloadEntriesMatch(ctx *analyze.Context, ns string, sel map[string]string) bool {
	for _, r := range ctx.ByKind("WorkloadEntry") {
		we, ok := r.Object.(*networking.WorkloadEntry)
		if ok && (ns == "" || r.Namespace == ns) && analyze.LabelsMatch(sel, we.Spec.Labels) {
			return true
		}
	}
	return false
}
