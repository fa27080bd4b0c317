package analyzers

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/analyze"
)

// SidecarScopeMinServices is how many services a namespace's proxies must
// be receiving without using them before MSH0002 speaks up; below that the
// extra configuration costs little.
const SidecarScopeMinServices = 10

// SidecarScope reports namespaces in the mesh with no Sidecar narrowing
// what their proxies receive (MSH0002), and suggests one that lists the
// hosts the namespace's routes and known calls reference.
//
// A namespace counts as in the mesh when it is labelled for injection or
// one of its pods runs a proxy. A namespace-wide Sidecar (no selector) in
// the namespace or in the root namespace scopes it.
type SidecarScope struct{}

// Metadata describes the analyzer.
func (*SidecarScope) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "sidecar.Scope", Description: "Suggests Sidecar resources for namespaces whose proxies receive every service in the mesh",
		Codes: []*analyze.MessageType{analyze.SidecarScopeMissing}}
}

// Analyze runs the checks.
func (*SidecarScope) Analyze(ctx *analyze.Context) {
	scoped := map[string]bool{}
	for _, r := range ctx.ByKind("Sidecar") {
		if sc, ok := r.Object.(*networking.Sidecar); ok && len(sc.Spec.GetWorkloadSelector().GetLabels()) == 0 {
			scoped[r.Namespace] = true
		}
	}
	if scoped[ctx.Mesh.Root()] {
		return
	}
	total := len(ctx.Services()) + len(ctx.ByKind("ServiceEntry"))
	var g *callGraph
	for _, r := range ctx.ByKind("Namespace") {
		ns, ok := r.Object.(*corev1.Namespace)
		if !ok || systemNamespaces[r.Name] || scoped[r.Name] || !inMesh(ctx, ns) {
			continue
		}
		if g == nil {
			g = buildCallGraph(ctx)
		}
		hosts := routedHosts(ctx, r.Name)
		for _, w := range ctx.WorkloadsIn(r.Name) {
			for h := range g.calls[w] {
				hosts[h] = true
			}
		}
		outside := total - len(ctx.ServicesIn(r.Name))
		unused := outside
		var egress []string
		for h := range hosts {
			ns := hostNamespace(ctx, h, r.Name)
			if ns == r.Name {
				continue
			}
			unused--
			egress = append(egress, ns+"/"+h)
		}
		if unused < SidecarScopeMinServices {
			continue
		}
		sort.Strings(egress)
		egress = append([]string{"./*", ctx.Mesh.Root() + "/*"}, egress...)
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: default\n  namespace: %s\nspec:\n  egress:\n  - hosts:\n", r.Name)
		for _, e := range egress {
			fmt.Fprintf(&b, "    - %q\n", e)
		}
		ctx.Report(analyze.SidecarScopeMissing, r, "",
			"Proxies in this namespace receive configuration for all %d services in the mesh, though its routes reference %d outside it. A Sidecar like this limits them to what they use:\n%s",
			total, len(egress)-2, strings.TrimRight(b.String(), "\n"))
	}
}

func inMesh(ctx *analyze.Context, ns *corev1.Namespace) bool {
	if NamespaceInjected(ns.Labels) {
		return true
	}
	for _, w := range ctx.WorkloadsIn(ns.Name) {
		if w.IsPod() && HasProxy(w.Containers) {
			return true
		}
	}
	return false
}

// hostNamespace returns the namespace a host belongs to: the Service's or
// ServiceEntry's, or "*" when unknown.
func hostNamespace(ctx *analyze.Context, host, from string) string {
	h, ok := ctx.LookupHost(host, from)
	switch {
	case !ok:
		return "*"
	case h.Service != nil:
		return h.Service.Namespace
	default:
		return h.ServiceEntry.Namespace
	}
}
