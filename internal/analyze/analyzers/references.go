package analyzers

import (
	"fmt"
	"strconv"
	"strings"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"

	"mesh.dev/mesh/internal/analyze"
)

// References reports references that do not resolve (IST0101): a
// VirtualService's gateways, destination hosts, ports and subsets, a
// Sidecar's egress hosts and an AuthorizationPolicy's source namespaces.
type References struct{}

// Metadata describes the analyzer.
func (*References) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "references.NotFound", Description: "Checks that gateways, hosts, subsets and namespaces referred to exist",
		Codes: []*analyze.MessageType{analyze.ReferencedResourceNotFound}}
}

// Analyze runs the checks.
func (*References) Analyze(ctx *analyze.Context) {
	gateways := map[string]bool{}
	for _, g := range ctx.ByKind("Gateway") {
		gateways[g.Namespace+"/"+g.Name] = true
	}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok {
			continue
		}
		for i, g := range vs.Spec.Gateways {
			if g == "mesh" || isInternalGateway(g) {
				continue // IST0165 reports Istio's generated Gateways
			}
			if !gateways[GatewayKey(g, r.Namespace)] {
				ctx.Report(analyze.ReferencedResourceNotFound, r, fmt.Sprintf("spec.gateways[%d]", i), "Referenced gateway not found: %q", g)
			}
		}
		ForEachDestination(vs, func(path DestinationPath, d *v1alpha3.Destination) {
			checkDestination(ctx, r, path, d)
		})
	}
	for _, r := range ctx.ByKind("Sidecar") {
		sc, ok := r.Object.(*networking.Sidecar)
		if !ok {
			continue
		}
		for i, eg := range sc.Spec.Egress {
			for j, h := range eg.Hosts {
				ns, host, ok := strings.Cut(h, "/")
				if !ok || ns == "*" || ns == "~" || strings.Contains(host, "*") {
					continue
				}
				if ns == "." {
					ns = r.Namespace
				}
				if _, found := ctx.LookupHost(host, ns); !found {
					ctx.Report(analyze.ReferencedResourceNotFound, r, fmt.Sprintf("spec.egress[%d].hosts[%d]", i, j), "Referenced host not found: %q", h)
				}
			}
		}
	}
	for _, r := range ctx.ByKind("AuthorizationPolicy") {
		ap, ok := r.Object.(*security.AuthorizationPolicy)
		if !ok {
			continue
		}
		for i, rule := range ap.Spec.Rules {
			for j, f := range rule.GetFrom() {
				for field, list := range map[string][]string{"namespaces": f.GetSource().GetNamespaces(), "notNamespaces": f.GetSource().GetNotNamespaces()} {
					for k, ns := range list {
						if strings.Contains(ns, "*") || ctx.NamespaceKnown(ns) {
							continue
						}
						ctx.Report(analyze.ReferencedResourceNotFound, r, fmt.Sprintf("spec.rules[%d].from[%d].source.%s[%d]", i, j, field, k), "Referenced namespace not found: %q", ns)
					}
				}
			}
		}
	}
}

func checkDestination(ctx *analyze.Context, r *analyze.Resource, path DestinationPath, d *v1alpha3.Destination) {
	if d == nil || d.Host == "" {
		return
	}
	// The subset is checked even when the host is missing: both need fixing.
	if d.Subset != "" && !ctx.HasSubset(d.Host, r.Namespace, d.Subset) {
		ctx.Report(analyze.ReferencedResourceNotFound, r, path.String()+".subset", "Referenced host+subset in destinationrule not found: %q", d.Host+"+"+d.Subset)
	}
	h, ok := ctx.LookupHost(d.Host, r.Namespace)
	if !ok {
		ctx.Report(analyze.ReferencedResourceNotFound, r, path.String()+".host", "Referenced host not found: %q", d.Host)
		return
	}
	if d.Port != nil && d.Port.Number != 0 && len(h.Ports) > 0 && !containsPort(h.Ports, d.Port.Number) {
		ctx.Report(analyze.ReferencedResourceNotFound, r, path.String()+".port.number", "Referenced port not found: host %q has no port %d (it has %s)", d.Host, d.Port.Number, portList(h.Ports))
	}
}

func containsPort(ports []uint32, p uint32) bool {
	for _, x := range ports {
		if x == p {
			return true
		}
	}
	return false
}

func portList(ports []uint32) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}

// GatewayKey turns a VirtualService's gateway reference into
// "namespace/name", relative to the VirtualService's namespace.
func GatewayKey(ref, ns string) string {
	if gns, name, ok := strings.Cut(ref, "/"); ok {
		return gns + "/" + name
	}
	return ns + "/" + ref
}

// DestinationPath is the field path of a destination in a VirtualService;
// String renders it ("spec.http[0].route[1].destination"). It is a value
// so that walking every destination costs no string until a finding
// needs one.
type DestinationPath struct {
	rules  string // "http", "tcp" or "tls"
	rule   int
	list   string // "route", "mirror" or "mirrors"
	target int
}

// String renders the path.
func (p DestinationPath) String() string {
	s := "spec." + p.rules + "[" + strconv.Itoa(p.rule) + "]." + p.list
	if p.list == "mirror" {
		return s
	}
	return s + "[" + strconv.Itoa(p.target) + "].destination"
}

// ForEachDestination calls fn for every route and mirror destination of a
// VirtualService, with the destination's field path.
func ForEachDestination(vs *networking.VirtualService, fn func(path DestinationPath, d *v1alpha3.Destination)) {
	for i, h := range vs.Spec.Http {
		for j, rd := range h.Route {
			fn(DestinationPath{"http", i, "route", j}, rd.Destination)
		}
		if h.Mirror != nil {
			fn(DestinationPath{"http", i, "mirror", 0}, h.Mirror)
		}
		for j, m := range h.Mirrors {
			fn(DestinationPath{"http", i, "mirrors", j}, m.Destination)
		}
	}
	for i, t := range vs.Spec.Tcp {
		for j, rd := range t.Route {
			fn(DestinationPath{"tcp", i, "route", j}, rd.Destination)
		}
	}
	for i, t := range vs.Spec.Tls {
		for j, rd := range t.Route {
			fn(DestinationPath{"tls", i, "route", j}, rd.Destination)
		}
	}
}

// BoundToMesh reports whether a VirtualService applies to sidecars.
func BoundToMesh(vs *networking.VirtualService) bool {
	if len(vs.Spec.Gateways) == 0 {
		return true
	}
	for _, g := range vs.Spec.Gateways {
		if g == "mesh" {
			return true
		}
	}
	return false
}
