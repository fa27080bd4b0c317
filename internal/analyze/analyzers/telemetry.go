package analyzers

import (
	"fmt"
	"sort"

	telemetry "istio.io/client-go/pkg/apis/telemetry/v1"

	"mesh.dev/mesh/internal/analyze"
)

// Telemetries reports Telemetry resources that compete for the same
// workloads, as Sidecars do: selectors matching one workload (IST0159) or
// several namespace-wide Telemetries in one namespace (IST0160); and
// entries naming no provider when the MeshConfig has no default provider
// for them (IST0157), which are ignored.
type Telemetries struct{}

// Metadata describes the analyzer.
func (*Telemetries) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "telemetry.Analyzers", Description: "Checks Telemetry providers and that at most one Telemetry applies to each workload",
		Codes: []*analyze.MessageType{analyze.InvalidTelemetryProvider, analyze.ConflictingTelemetryWorkloadSelectors, analyze.MultipleTelemetriesWithoutWorkloadSelectors}}
}

// Analyze runs the checks.
func (*Telemetries) Analyze(ctx *analyze.Context) {
	wide := map[string][]*analyze.Resource{}
	selecting := map[*analyze.Workload][]*analyze.Resource{}
	var order []*analyze.Workload
	var defaults struct{ logs, traces, metrics bool }
	if ctx.Mesh != nil && ctx.Mesh.Config != nil {
		dp := ctx.Mesh.Config.GetDefaultProviders()
		defaults.logs, defaults.traces, defaults.metrics = len(dp.GetAccessLogging()) > 0, len(dp.GetTracing()) > 0, len(dp.GetMetrics()) > 0
	}
	for _, r := range ctx.ByKind("Telemetry") {
		t, ok := r.Object.(*telemetry.Telemetry)
		if !ok {
			continue
		}
		for i, e := range t.Spec.AccessLogging {
			if len(e.Providers) == 0 && !defaults.logs {
				reportNoProvider(ctx, r, fmt.Sprintf("spec.accessLogging[%d]", i))
			}
		}
		for i, e := range t.Spec.Tracing {
			if len(e.Providers) == 0 && !defaults.traces {
				reportNoProvider(ctx, r, fmt.Sprintf("spec.tracing[%d]", i))
			}
		}
		for i, e := range t.Spec.Metrics {
			if len(e.Providers) == 0 && !defaults.metrics {
				reportNoProvider(ctx, r, fmt.Sprintf("spec.metrics[%d]", i))
			}
		}
		sel := t.Spec.GetSelector().GetMatchLabels()
		if len(sel) == 0 {
			wide[r.Namespace] = append(wide[r.Namespace], r)
			continue
		}
		for _, w := range ctx.SelectWorkloads(r.Namespace, sel) {
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
				ctx.Report(analyze.MultipleTelemetriesWithoutWorkloadSelectors, r, "spec.selector",
					"The Telemetries [%s] in namespace %q have no workload selector, which can lead to undefined behavior: keep one, or give the others selectors", names(rs), ns)
			}
		}
	}
	for _, w := range order {
		if rs := selecting[w]; len(rs) > 1 {
			for _, r := range rs {
				ctx.Report(analyze.ConflictingTelemetryWorkloadSelectors, r, "spec.selector",
					"The Telemetries [%s] in namespace %q select the same workload %s %q, which can lead to undefined behavior: make the selectors disjoint", names(rs), w.Namespace, w.Kind, w.Name)
			}
		}
	}
}

func reportNoProvider(ctx *analyze.Context, r *analyze.Resource, field string) {
	ctx.Report(analyze.InvalidTelemetryProvider, r, field+".providers",
		"The Telemetry %v in namespace %q with empty providers will be ignored: name a provider, or set the MeshConfig's defaultProviders", r.Name, r.Namespace)
}
