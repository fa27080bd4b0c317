package validation

import (
	telemetry "istio.io/client-go/pkg/apis/telemetry/v1"

	"mesh.dev/mesh/internal/celexpr"
)

func validateTelemetry(l *list, o *telemetry.Telemetry) {
	s := &o.Spec
	validateSelector(l, s.Selector, "spec.selector")
	if s.Selector != nil && (s.TargetRef != nil || len(s.TargetRefs) > 0) {
		l.err("spec.targetRefs", "selector and targetRefs cannot both be set")
	}
	providers := func(p string, names []string) {
		for i, n := range names {
			if n == "" {
				l.err(idx(p, i)+".name", "a provider needs a name")
			}
		}
	}
	for i, al := range s.AccessLogging {
		p := idx("spec.accessLogging", i)
		var names []string
		for _, pr := range al.Providers {
			names = append(names, pr.GetName())
		}
		providers(p+".providers", names)
		if e := al.GetFilter().GetExpression(); e != "" {
			if _, err := celexpr.Parse(e); err != nil {
				l.err(p+".filter.expression", "%v", err)
			}
		}
	}
	for i, tr := range s.Tracing {
		p := idx("spec.tracing", i)
		var names []string
		for _, pr := range tr.Providers {
			names = append(names, pr.GetName())
		}
		providers(p+".providers", names)
		if v := tr.GetRandomSamplingPercentage(); v != nil && (v.GetValue() < 0 || v.GetValue() > 100) {
			l.err(p+".randomSamplingPercentage", "%v is not a percentage between 0 and 100", v.GetValue())
		}
		for name, ct := range tr.CustomTags {
			if ct.GetType() == nil {
				l.err(key(p+".customTags", name), "a custom tag needs literal, environment or header")
			}
		}
	}
	for i, m := range s.Metrics {
		p := idx("spec.metrics", i)
		var names []string
		for _, pr := range m.Providers {
			names = append(names, pr.GetName())
		}
		providers(p+".providers", names)
	}
}
