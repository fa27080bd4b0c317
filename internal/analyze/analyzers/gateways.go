package analyzers

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// Gateways reports Gateway ports the gateway workload's Service does not
// expose (IST0162) and Gateways that claim the same selector, port and host
// (IST0145).
type Gateways struct{}

// Metadata describes the analyzer.
func (*Gateways) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "gateway.Ports", Description: "Checks Gateway ports against the gateway Service and against other Gateways",
		Codes: []*analyze.MessageType{analyze.GatewayPortNotDefinedOnService, analyze.ConflictingGateways}}
}

type gatewayServer struct {
	r     *analyze.Resource
	index int
	port  uint32
	hosts []string
}

// Analyze runs the checks.
func (*Gateways) Analyze(ctx *analyze.Context) {
	bySelector := map[string][]gatewayServer{}
	var selectors []string
	for _, r := range ctx.ByKind("Gateway") {
		gw, ok := r.Object.(*networking.Gateway)
		if !ok {
			continue
		}
		sel := selectorKey(gw.Spec.Selector)
		for i, s := range gw.Spec.Servers {
			if s.Port == nil {
				continue
			}
			if len(bySelector[sel]) == 0 {
				selectors = append(selectors, sel)
			}
			bySelector[sel] = append(bySelector[sel], gatewayServer{r, i, s.Port.Number, s.Hosts})
		}
		checkGatewayService(ctx, r, gw)
	}
	for _, sel := range selectors {
		servers := bySelector[sel]
		reported := map[*analyze.Resource]bool{}
		for i := range servers {
			for j := i + 1; j < len(servers); j++ {
				a, b := servers[i], servers[j]
				if a.r == b.r || a.port != b.port || !anyHostOverlap(a.hosts, b.hosts) {
					continue
				}
				for _, pair := range [][2]gatewayServer{{a, b}, {b, a}} {
					if reported[pair[0].r] {
						continue
					}
					reported[pair[0].r] = true
					ctx.Report(analyze.ConflictingGateways, pair[0].r, fmt.Sprintf("spec.servers[%d]", pair[0].index),
						"Conflict with gateways %s/%s (workload selector %s, port %d, hosts overlap): only one of them takes effect", pair[1].r.Namespace, pair[1].r.Name, sel, a.port)
				}
			}
		}
	}
}

func checkGatewayService(ctx *analyze.Context, r *analyze.Resource, gw *networking.Gateway) {
	if len(gw.Spec.Selector) == 0 {
		return
	}
	ports := map[uint32]bool{}
	found := false
	for _, w := range ctx.SelectWorkloads("", gw.Spec.Selector) {
		for _, svc := range ctx.ServicesFor(w) {
			found = true
			for _, p := range svc.Service.Spec.Ports {
				ports[uint32(p.Port)] = true
				if t := p.TargetPort.IntValue(); t > 0 {
					ports[uint32(t)] = true
				}
			}
		}
	}
	if !found {
		return // the gateway's workload or Service is not in the snapshot: nothing to compare with
	}
	for i, s := range gw.Spec.Servers {
		if s.Port != nil && !ports[s.Port.Number] {
			ctx.Report(analyze.GatewayPortNotDefinedOnService, r, fmt.Sprintf("spec.servers[%d].port.number", i),
				"The gateway is listening on a target port (port %d) that is not defined in the Service associated with its workload instances (Pod selector %s): add it to that Service to reach it through the Service", s.Port.Number, selectorKey(gw.Spec.Selector))
		}
	}
}

func selectorKey(sel map[string]string) string {
	parts := make([]string, 0, len(sel))
	for k, v := range sel {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func anyHostOverlap(a, b []string) bool {
	for _, x := range a {
		_, hx, ok := strings.Cut(x, "/")
		if !ok {
			hx = x
		}
		for _, y := range b {
			_, hy, ok := strings.Cut(y, "/")
			if !ok {
				hy = y
			}
			if analyze.HostsOverlap(hx, hy) {
				return true
			}
		}
	}
	return false
}
