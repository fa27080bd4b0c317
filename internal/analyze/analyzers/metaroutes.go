package analyzers

import (
	"fmt"
	"slices"
	"strings"

	"mesh.dev/mesh/internal/analyze"
	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/hostmatch"
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
				checkMetaDestination(ctx, r, mr, fmt.Sprintf("spec.routes[%d].route[%d].destination", i, j), d.Destination)
			}
		}
	}
}

// metaRouteViewers are the namespaces whose sidecars take a MetaRoute's
// routes (pilot applies it to those its exportTo admits, hostmatch.Exported)
// that analysis can name: its own namespace unless exportTo leaves it out,
// then each namespace exportTo names. For "*" or an unset exportTo the
// own namespace stands for the rest, as a VirtualService's destinations
// are checked from its namespace.
func metaRouteViewers(mr *meshnet.MetaRoute) []string {
	var out []string
	if hostmatch.Exported(mr.Spec.ExportTo, mr.Namespace, mr.Namespace) {
		out = append(out, mr.Namespace)
	}
	for _, e := range mr.Spec.ExportTo {
		if e != "." && e != "*" && e != "~" && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// checkMetaDestination checks a destination's host, subset and port from
// each namespace whose proxies take the MetaRoute, so a finding falls where
// pilot gives those proxies no such cluster.
func checkMetaDestination(ctx *analyze.Context, r *analyze.Resource, mr *meshnet.MetaRoute, path string, d meshnet.Destination) {
	if d.Host == "" {
		return
	}
	var found *analyze.Host
	for _, ns := range metaRouteViewers(mr) {
		host, where := d.Host, ""
		if ns != r.Namespace {
			// A short name is the Service in the MetaRoute's namespace,
			// whichever proxies take it.
			if !strings.Contains(host, ".") && !strings.HasPrefix(host, "*") {
				host = analyze.ResolveHost(host, r.Namespace)
			}
			where = fmt.Sprintf(" for the proxies of namespace %s (spec.exportTo)", ns)
		}
		if d.Subset != "" && !ctx.HasSubset(host, ns, d.Subset) {
			ctx.Report(analyze.ReferencedResourceNotFound, r, path+".subset", "Referenced host+subset in destinationrule not found: %q%s", d.Host+"+"+d.Subset, where)
		}
		h, ok := ctx.LookupHost(host, ns)
		if !ok {
			ctx.Report(analyze.ReferencedResourceNotFound, r, path+".host", "Referenced host not found: %q%s", d.Host, where)
			continue
		}
		if found == nil {
			found = &h
		}
	}
	if h := found; h != nil && d.Port != nil && d.Port.Number > 0 && len(h.Ports) > 0 && !containsPort(h.Ports, uint32(d.Port.Number)) {
		ctx.Report(analyze.ReferencedResourceNotFound, r, path+".port.number", "Referenced port not found: host %q has no port %d (it has %s)", d.Host, d.Port.Number, portList(h.Ports))
	}
}
