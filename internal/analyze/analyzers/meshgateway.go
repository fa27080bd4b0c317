package analyzers

import (
	"sort"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// MeshGatewayConflicts reports hosts claimed by more than one VirtualService
// bound to the mesh gateway (IST0109).
type MeshGatewayConflicts struct{}

// Metadata describes the analyzer.
func (*MeshGatewayConflicts) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "virtualservice.ConflictingMeshGatewayHosts", Description: "Checks that no host is claimed by two VirtualServices bound to the mesh gateway",
		Codes: []*analyze.MessageType{analyze.ConflictingMeshGatewayVirtualServiceHosts}}
}

// Analyze runs the checks.
func (*MeshGatewayConflicts) Analyze(ctx *analyze.Context) {
	owners := map[string][]*analyze.Resource{}
	var hosts []string
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok || !BoundToMesh(vs) {
			continue
		}
		seen := map[string]bool{}
		for _, h := range vs.Spec.Hosts {
			fq := analyze.ResolveHost(h, r.Namespace)
			if seen[fq] {
				continue
			}
			seen[fq] = true
			if len(owners[fq]) == 0 {
				hosts = append(hosts, fq)
			}
			owners[fq] = append(owners[fq], r)
		}
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		rs := owners[h]
		if len(rs) < 2 {
			continue
		}
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = r.Namespace + "/" + r.Name
		}
		for _, r := range rs {
			ctx.Report(analyze.ConflictingMeshGatewayVirtualServiceHosts, r, "spec.hosts",
				"The VirtualServices %s associated with mesh gateway define the same host %s which can lead to undefined behavior: merge them into one VirtualService, or give each its own hosts", strings.Join(names, ","), h)
		}
	}
}
