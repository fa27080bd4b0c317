package telemetry

import telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"

func (p *Policy) tracingProblems(id string, t *telemetryv1.Telemetry) []Problem {
	var out []Problem
	if len(t.Spec.GetTracing()) > 0 {
		out = append(out, Problem{id, "spec.tracing", "not carried out yet: spans are propagated, not reported"})
	}
	return out
}

func metricsProblems(id string, t *telemetryv1.Telemetry) []Problem {
	var out []Problem
	if len(t.Spec.GetMetrics()) > 0 {
		out = append(out, Problem{id, "spec.metrics", "not carried out: Istio's standard metrics are recorded with their standard labels"})
	}
	return out
}
