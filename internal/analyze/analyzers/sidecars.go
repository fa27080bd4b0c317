package analyzers

import (
	"sort"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// Sidecars reports Sidecar resources that compete for the same workloads:
// selectors matching the same workload (IST0110) or several namespace-wide
// Sidecars in one namespace (IST0111).
type Sidecars struct{}

// Metadata describes the analyzer.
func (*Sidecars) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "sidecar.Conflicts", Description: "Checks that at most one Sidecar applies to each workload",
		Codes: []*analyze.MessageType{analyze.ConflictingSidecarWorkloadSelectors, analyze.MultipleSidecarsWithoutWorkloadSelectors}}
}

// Analyze runs the checks.
func (*Sidecars) Analyze(ctx *analyze.Context) {
	wide := map[string][]*analyze.Resource{}
	selecting := map[*analyze.Workload][]*analyze.Resource{}
	var order []*analyze.Workload
	for _, r := range ctx.ByKind("Sidecar") {
		sc, ok := r.Object.(*networking.Sidecar)
		if !ok {
			continue
		}
		if sc.Spec.WorkloadSelector == nil || len(sc.Spec.WorkloadSelector.Labels) == 0 {
			wide[r.Namespace] = append(wide[r.Namespace], r)
			continue
		}
		for _, w := range ctx.SelectWorkloads(r.Namespace, sc.Spec.WorkloadSelector.Labels) {
			if len(selecting[w]) == 0 {
				order = append(order, w)
			}
			selecting[w] = append(selecting[w], r)
		}
	}
	namespaces := make([]string, 0, len(wide))
	for ns := range wide {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	for _, ns := range namespaces {
		if rs := wide[ns]; len(rs) > 1 {
			for _, r := range rs {
				ctx.Report(analyze.MultipleSidecarsWithoutWorkloadSelectors, r, "spec.workloadSelector",
					"The Sidecars [%s] in namespace %q have no workload selector, which can lead to undefined behavior: keep one, or give the others selectors", names(rs), ns)
			}
		}
	}
	for _, w := range order {
		if rs := selecting[w]; len(rs) > 1 {
			for _, r := range rs {
				ctx.Report(analyze.ConflictingSidecarWorkloadSelectors, r, "spec.workloadSelector",
					"The Sidecars [%s] in namespace %q select the same workload pod %q (%s), which can lead to undefined behavior: make the selectors disjoint", names(rs), w.Namespace, w.Name, w.Kind)
			}
		}
	}
}

func names(rs []*analyze.Resource) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.Namespace + "/" + r.Name
	}
	return strings.Join(s, ", ")
}
