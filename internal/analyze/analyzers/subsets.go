package analyzers

import (
	"fmt"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// SubsetPods reports DestinationRule subsets that routes send traffic to
// but that select no pods (IST0173). A subset nothing routes to is often a
// staged canary, so it is left alone.
type SubsetPods struct{}

// Metadata describes the analyzer.
func (*SubsetPods) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "destinationrule.SubsetPods", Description: "Checks that subsets receiving traffic select pods",
		Codes: []*analyze.MessageType{analyze.DestinationRuleSubsetNotSelectPods}}
}

// Analyze runs the checks.
func (*SubsetPods) Analyze(ctx *analyze.Context) {
	routed := map[string]bool{} // host+"/"+subset
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok {
			continue
		}
		ForEachDestination(vs, func(_ DestinationPath, d *v1alpha3.Destination) {
			if d != nil && d.Subset != "" {
				routed[analyze.ResolveHost(d.Host, r.Namespace)+"/"+d.Subset] = true
			}
		})
	}
	for _, r := range ctx.ByKind("DestinationRule") {
		dr, ok := r.Object.(*networking.DestinationRule)
		if !ok {
			continue
		}
		host := analyze.ResolveHost(dr.Spec.Host, r.Namespace)
		h, ok := ctx.LookupHost(dr.Spec.Host, r.Namespace)
		if !ok || h.Service == nil || len(h.Service.Service.Spec.Selector) == 0 {
			continue
		}
		for i, ss := range dr.Spec.Subsets {
			if !routed[host+"/"+ss.Name] {
				continue
			}
			svcSel := h.Service.Service.Spec.Selector
			if !selectsAny(ctx, h.Service.Namespace, svcSel, ss.Labels) {
				sel := map[string]string{}
				for k, v := range svcSel {
					sel[k] = v
				}
				for k, v := range ss.Labels {
					sel[k] = v
				}
				ctx.Report(analyze.DestinationRuleSubsetNotSelectPods, r, fmt.Sprintf("spec.subsets[%d]", i),
					"Subset %q receives traffic but selects no pods of service %q (labels %v)", ss.Name, dr.Spec.Host, sel)
			}
		}
	}
}

// selectsAny reports whether some workload in ns has the Service's
// selector labels merged with the subset's (the subset's value winning),
// without building the merged map for every subset.
func selectsAny(ctx *analyze.Context, ns string, svcSel, subset map[string]string) bool {
	narrow := subset
	if len(narrow) == 0 {
		narrow = svcSel
	}
	for _, w := range ctx.SelectWorkloads(ns, narrow) {
		if !analyze.LabelsMatch(subset, w.Labels) {
			continue
		}
		ok := true
		for k, v := range svcSel {
			if _, overridden := subset[k]; !overridden && w.Labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
