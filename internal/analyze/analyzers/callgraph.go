package analyzers

import (
	"sort"
	"strings"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"

	"mesh.dev/mesh/internal/analyze"
)

// The call graph is what configuration tells about who calls whom. Nothing
// in Kubernetes or Istio config states it outright, so it is pieced
// together from three places where config names a caller and a callee:
//
//  1. A VirtualService route whose match has sourceLabels: workloads with
//     those labels (in sourceNamespace, or the VirtualService's namespace)
//     call the VirtualService's hosts.
//  2. An ALLOW AuthorizationPolicy rule whose source names principals
//     (cluster.local/ns/NS/sa/SA) or serviceAccounts (NS/SA): workloads
//     running as that service account call the services in front of the
//     workloads the policy selects.
//  3. A Sidecar's egress hosts naming one namespace and one host (not "*"):
//     the workloads the Sidecar applies to call that host.
//
// Edges only ever come from these statements, so a chain the graph shows
// is one the configuration itself describes.
type callGraph struct {
	// calls maps a caller workload to the hosts (fully qualified) it calls.
	calls map[*analyze.Workload]map[string]bool
}

func buildCallGraph(ctx *analyze.Context) *callGraph {
	g := &callGraph{calls: map[*analyze.Workload]map[string]bool{}}
	add := func(w *analyze.Workload, host string) {
		if g.calls[w] == nil {
			g.calls[w] = map[string]bool{}
		}
		g.calls[w][host] = true
	}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok {
			continue
		}
		for _, h := range vs.Spec.Http {
			for _, m := range h.Match {
				if len(m.SourceLabels) == 0 {
					continue
				}
				ns := m.SourceNamespace
				if ns == "" {
					ns = r.Namespace
				}
				for _, w := range ctx.SelectWorkloads(ns, m.SourceLabels) {
					for _, host := range vs.Spec.Hosts {
						add(w, analyze.ResolveHost(host, r.Namespace))
					}
				}
			}
		}
	}
	bySA := map[string][]*analyze.Workload{}
	for _, w := range ctx.Workloads() {
		sa := w.ServiceAccount
		if sa == "" {
			sa = "default"
		}
		bySA[w.Namespace+"/"+sa] = append(bySA[w.Namespace+"/"+sa], w)
	}
	for _, r := range ctx.ByKind("AuthorizationPolicy") {
		ap, ok := r.Object.(*security.AuthorizationPolicy)
		if !ok || ap.Spec.Action != 0 { // 0 is ALLOW
			continue
		}
		var callees []string
		for _, w := range ctx.SelectWorkloads(r.Namespace, ap.Spec.GetSelector().GetMatchLabels()) {
			for _, svc := range ctx.ServicesFor(w) {
				callees = append(callees, svc.Host)
			}
		}
		for _, rule := range ap.Spec.Rules {
			for _, f := range rule.GetFrom() {
				var accounts []string
				for _, p := range f.GetSource().GetPrincipals() {
					if parts := strings.Split(p, "/"); len(parts) == 5 && parts[1] == "ns" && parts[3] == "sa" {
						accounts = append(accounts, parts[2]+"/"+parts[4])
					}
				}
				accounts = append(accounts, f.GetSource().GetServiceAccounts()...)
				for _, a := range accounts {
					for _, w := range bySA[a] {
						for _, c := range callees {
							add(w, c)
						}
					}
				}
			}
		}
	}
	for _, r := range ctx.ByKind("Sidecar") {
		sc, ok := r.Object.(*networking.Sidecar)
		if !ok {
			continue
		}
		workloads := ctx.SelectWorkloads(r.Namespace, sc.Spec.GetWorkloadSelector().GetLabels())
		for _, eg := range sc.Spec.Egress {
			for _, h := range eg.Hosts {
				ns, host, ok := strings.Cut(h, "/")
				if !ok || ns == "*" || ns == "~" || strings.Contains(host, "*") {
					continue
				}
				if ns == "." {
					ns = r.Namespace
				}
				for _, w := range workloads {
					add(w, analyze.ResolveHost(host, ns))
				}
			}
		}
	}
	return g
}

// callees returns the hosts a workload calls, sorted.
func (g *callGraph) callees(w *analyze.Workload) []string {
	out := make([]string, 0, len(g.calls[w]))
	for h := range g.calls[w] {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// routedHosts returns the destination hosts of VirtualServices in ns.
func routedHosts(ctx *analyze.Context, ns string) map[string]bool {
	out := map[string]bool{}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok || r.Namespace != ns {
			continue
		}
		ForEachDestination(vs, func(_ DestinationPath, d *v1alpha3.Destination) {
			if d != nil && d.Host != "" {
				out[analyze.ResolveHost(d.Host, ns)] = true
			}
		})
	}
	return out
}
