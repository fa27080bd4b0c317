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
			sel := make(map[string]string, len(h.Service.Service.Spec.Selector)+len(ss.Labels))
			for k, v := range h.Service.Service.Spec.Selector {
				sel[k] = v
			}
			for k, v := range ss.Labels {
				sel[k] = v
			}
			if len(ctx.SelectWorkloads(h.Service.Namespace, sel)) == 0 {
				ctx.Report(analyze.DestinationRuleSubsetNotSelectPods, r, fmt.Sprintf("spec.subsets[%d]", i),
					"The Subset %s defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream): routes send traffic to it, but no pod of service %q has labels %s", ss.Name, dr.Spec.Host, selectorKey(sel))
			}
		}
	}
}
