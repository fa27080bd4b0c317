package analyzers

import (
	"fmt"

	"mesh.dev/mesh/internal/analyze"
	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
)

// MetaRoutes checks what a MetaRoute names (IST0101): its hosts, and each
// destination's host, DestinationRule subset and port, as for a
// VirtualService's destinations. (What it sets that the mesh does not
// carry out, mirror, is NotEnforced's MSH0003, from the field table.)
type MetaRoutes struct{}

// Metadata describes the analyzer.
func (*MetaRoutes) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "metaroute.References", Description: "Checks the hosts, subsets and ports MetaRoutes name",
		Codes: []*analyze.MessageType{analyze.ReferencedResourceNotFound}}
}

// Analyze runs the checks.
func (*MetaRoutes) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind(meshnet.Kind) {
		mr, ok := r.Object.(*meshnet.MetaRoute)
		if !ok {
			continue
		}
		for i, h := range mr.Spec.Hosts {
			if h == "" || h == "*" || ctx.AnyHostMatching(h, r.Namespace) {
				continue
			}
			ctx.Report(analyze.ReferencedResourceNotFound, r, fmt.Sprintf("spec.hosts[%d]", i), "Referenced host not found: %q", h)
		}
		for i, rt := range mr.Spec.Routes {
			for j, d := range rt.Route {
				checkMetaDestination(ctx, r, fmt.Sprintf("spec.routes[%d].route[%d].destination", i, j), d.Destination)
			}
		}
	}
}

func checkMetaDestination(ctx *analyze.Context, r *analyze.Resource, path string, d meshnet.Destination) {
	if d.Host == "" {
		return
	}
	if d.Subset != "" && !ctx.HasSubset(d.Host, r.Namespace, d.Subset) {
		ctx.Report(analyze.ReferencedResourceNotFound, r, path+".subset", "Referenced host+subset in destinationrule not found: %q", d.Host+"+"+d.Subset)
	}
	h, ok := ctx.LookupHost(d.Host, r.Namespace)
	if !ok {
		ctx.Report(analyze.ReferencedResourceNotFound, r, path+".host", "Referenced host not found: %q", d.Host)
		return
	}
	if d.Port != nil && d.Port.Number > 0 && len(h.Ports) > 0 && !containsPort(h.Ports, uint32(d.Port.Number)) {
		ctx.Report(analyze.ReferencedResourceNotFound, r, path+".port.number", "Referenced port not found: host %q has no port %d (it has %s)", d.Host, d.Port.Number, portList(h.Ports))
	}
}
