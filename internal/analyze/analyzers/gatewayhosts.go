package analyzers

import (
	"fmt"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// GatewayHosts reports VirtualService hosts that none of the servers of a
// gateway it is bound to serve (IST0132).
type GatewayHosts struct{}

// Metadata describes the analyzer.
func (*GatewayHosts) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "gateway.VirtualServiceHosts", Description: "Checks that VirtualService hosts are served by the gateways they are bound to",
		Codes: []*analyze.MessageType{analyze.VirtualServiceHostNotFoundInGateway}}
}

// Analyze runs the checks.
func (*GatewayHosts) Analyze(ctx *analyze.Context) {
	gateways := map[string]*analyze.Resource{}
	for _, g := range ctx.ByKind("Gateway") {
		gateways[g.Namespace+"/"+g.Name] = g
	}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok {
			continue
		}
		for gi, ref := range vs.Spec.Gateways {
			g, ok := gateways[GatewayKey(ref, r.Namespace)]
			if !ok {
				continue // reported as not found
			}
			gw, ok := g.Object.(*networking.Gateway)
			if !ok {
				continue
			}
			for hi, h := range vs.Spec.Hosts {
				if !gatewayServes(gw, g.Namespace, r.Namespace, h) {
					ctx.Report(analyze.VirtualServiceHostNotFoundInGateway, r, fmt.Sprintf("spec.hosts[%d]", hi),
						"one or more host [%s] defined in VirtualService %s/%s not found in Gateway %s (spec.gateways[%d]): add it to one of the gateway's servers or remove it here", h, r.Namespace, r.Name, ref, gi)
				}
			}
		}
	}
}

// gatewayServes reports whether some server of gw (in namespace gwNS) has a
// host entry that admits host from a VirtualService in vsNS.
func gatewayServes(gw *networking.Gateway, gwNS, vsNS, host string) bool {
	for _, s := range gw.Spec.Servers {
		for _, sh := range s.Hosts {
			ns, h, ok := strings.Cut(sh, "/")
			if !ok {
				ns, h = "*", sh
			}
			switch ns {
			case "*":
			case ".":
				if vsNS != gwNS {
					continue
				}
			default:
				if ns != vsNS {
					continue
				}
			}
			if analyze.HostsOverlap(h, host) {
				return true
			}
		}
	}
	return false
}
