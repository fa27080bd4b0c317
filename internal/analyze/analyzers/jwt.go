package analyzers

import (
	"fmt"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"

	"mesh.dev/mesh/internal/analyze"
)

// JWT reports RequestAuthentications whose workloads sit behind a Service
// port that is not HTTP (IST0119), where a JWT cannot be read, and
// VirtualServices that route on JWT claims (headers
// "@request.auth.claims.*") at a gateway whose pods no RequestAuthentication
// selects (IST0149), where the claims are never set.
type JWT struct{}

// Metadata describes the analyzer.
func (*JWT) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "jwt.Analyzers", Description: "Checks JWT policies reach HTTP ports and claim-based routes have a RequestAuthentication",
		Codes: []*analyze.MessageType{analyze.JwtFailureDueToInvalidServicePortPrefix, analyze.JwtClaimBasedRoutingWithoutRequestAuthN}}
}

var httpProtocols = map[string]bool{"http": true, "http_proxy": true, "http2": true, "https": true, "grpc": true, "grpc-web": true}

// Analyze runs the checks.
func (*JWT) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("RequestAuthentication") {
		ra, ok := r.Object.(*security.RequestAuthentication)
		if !ok || len(ra.Spec.GetJwtRules()) == 0 {
			continue
		}
		sel := ra.Spec.GetSelector().GetMatchLabels()
		if len(sel) == 0 {
			continue // namespace-wide: Istio judges only selected workloads
		}
		seen := map[string]bool{}
		for _, w := range ctx.SelectWorkloads(r.Namespace, sel) {
			for _, svc := range ctx.ServicesFor(w) {
				for _, p := range svc.Service.Spec.Ports {
					key := fmt.Sprintf("%s/%d", svc.Name, p.Port)
					if seen[key] || httpProtocols[PortProtocol(p)] {
						continue
					}
					seen[key] = true
					ctx.Report(analyze.JwtFailureDueToInvalidServicePortPrefix, r, "spec.selector.matchLabels",
						"Authentication policy with JWT targets Service %s with invalid port specification (port: %d, name: %s, protocol: %s, targetPort: %s): name the port http-... (or set appProtocol) so tokens can be checked",
						svc.Name, p.Port, p.Name, p.Protocol, p.TargetPort.String())
				}
			}
		}
	}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok {
			continue
		}
		var gateways []*analyze.Resource
		for _, g := range vs.Spec.Gateways {
			if g == "mesh" {
				continue
			}
			ns, name, found := strings.Cut(g, "/")
			if !found {
				ns, name = r.Namespace, g
			}
			for _, gr := range ctx.ByKind("Gateway") {
				if gr.Namespace == ns && gr.Name == name {
					gateways = append(gateways, gr)
				}
			}
		}
		if len(gateways) == 0 {
			continue
		}
		for i, h := range vs.Spec.Http {
			for j, m := range h.Match {
				for k := range m.Headers {
					if !strings.HasPrefix(k, "@request.auth.claims") {
						continue
					}
					for _, gr := range gateways {
						gw, ok := gr.Object.(*networking.Gateway)
						if !ok || len(gw.Spec.Selector) == 0 {
							continue
						}
						pods := ctx.SelectWorkloads("", gw.Spec.Selector)
						for _, w := range pods {
							if !requestAuthnSelects(ctx, w) {
								ctx.Report(analyze.JwtClaimBasedRoutingWithoutRequestAuthN, r, fmt.Sprintf("spec.http[%d].match[%d].headers[%q]", i, j, k),
									"The virtual service uses the JWT claim based routing (key: %s) but found no request authentication for the gateway (%s) pod (%s). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.",
									k, gr.Namespace+"/"+gr.Name, w.Namespace+"/"+w.Name)
								break
							}
						}
					}
				}
			}
		}
	}
}

// requestAuthnSelects reports whether a RequestAuthentication applies to
// the workload: one selecting it, its namespace's, or the root
// namespace's.
func requestAuthnSelects(ctx *analyze.Context, w *analyze.Workload) bool {
	for _, r := range ctx.ByKind("RequestAuthentication") {
		ra, ok := r.Object.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		sel := ra.Spec.GetSelector().GetMatchLabels()
		switch {
		case r.Namespace == w.Namespace && (len(sel) == 0 || analyze.LabelsMatch(sel, w.Labels)):
			return true
		case r.Namespace == ctx.Mesh.Root() && len(sel) == 0:
			return true
		}
	}
	return false
}
