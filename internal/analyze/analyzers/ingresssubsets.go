package analyzers

import (
	"fmt"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// IngressSubsets reports mesh VirtualServices whose subset routes cannot
// apply to requests arriving through an ingress gateway (IST0140): a
// gateway applies only the VirtualServices bound to it, so when a gateway
// route sends a host's traffic without a subset, the canary split written
// for the mesh is skipped for everything that comes in from outside.
type IngressSubsets struct{}

// Metadata describes the analyzer.
func (*IngressSubsets) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "virtualservice.IngressRouteRules", Description: "Checks mesh subset routes are not bypassed by gateway routes to the same host",
		Codes: []*analyze.MessageType{analyze.IngressRouteRulesNotAffected}}
}

// Analyze runs the checks.
func (*IngressSubsets) Analyze(ctx *analyze.Context) {
	// Hosts gateway routes send to without a subset, with the gateway
	// VirtualService that does.
	viaGateway := map[string]*analyze.Resource{}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok || len(vs.Spec.Gateways) == 0 {
			continue
		}
		for _, g := range vs.Spec.Gateways {
			if g == "mesh" {
				continue
			}
			for _, h := range vs.Spec.Http {
				for _, d := range h.Route {
					if dst := d.GetDestination(); dst != nil && dst.Subset == "" {
						host := analyze.ResolveHost(dst.Host, r.Namespace)
						if viaGateway[host] == nil {
							viaGateway[host] = r
						}
					}
				}
			}
		}
	}
	if len(viaGateway) == 0 {
		return
	}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok || !BoundToMesh(vs) {
			continue
		}
		for i, h := range vs.Spec.Http {
			// Only a split between subsets is reported: one subset usually
			// pins the host to its only version, which ingress traffic
			// reaches anyway.
			subsets := map[string]bool{}
			for _, d := range h.Route {
				if dst := d.GetDestination(); dst != nil && dst.Subset != "" {
					subsets[dst.Subset] = true
				}
			}
			if len(subsets) < 2 {
				continue
			}
			for j, d := range h.Route {
				dst := d.GetDestination()
				if dst == nil || dst.Subset == "" {
					continue
				}
				gw := viaGateway[analyze.ResolveHost(dst.Host, r.Namespace)]
				if gw == nil || gw == r {
					continue
				}
				ctx.Report(analyze.IngressRouteRulesNotAffected, r, fmt.Sprintf("spec.http[%d].route[%d].destination.subset", i, j),
					"Subset in virtual service %s has no effect on ingress gateway %s requests: that VirtualService sends %s without a subset; repeat the split there, or bind this one to the gateway too",
					r.Namespace+"/"+r.Name, gw.Namespace+"/"+gw.Name, dst.Host)
			}
		}
	}
}
