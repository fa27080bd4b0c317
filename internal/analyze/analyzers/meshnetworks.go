package analyzers

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/resource"
)

// MeshNetworks checks the --meshNetworksFile: every network endpoint
// taken from a service registry must name a registry the mesh knows
// (IST0126). This mesh reads one cluster, whose registry is named
// "Kubernetes", as Istio names its default cluster.
type MeshNetworks struct{}

// KnownRegistries are the service registries a MeshNetworks endpoint may
// name.
var KnownRegistries = map[string]bool{"Kubernetes": true}

// Metadata describes the analyzer.
func (*MeshNetworks) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "meshnetworks.MeshNetworksAnalyzer", Description: "Checks the MeshNetworks' endpoints name known service registries",
		Codes: []*analyze.MessageType{analyze.UnknownMeshNetworksServiceRegistry}}
}

// Analyze runs the checks.
func (*MeshNetworks) Analyze(ctx *analyze.Context) {
	if ctx.Mesh == nil || ctx.Mesh.Networks == nil {
		return
	}
	r := &analyze.Resource{Kind: "MeshNetworks", Name: "meshnetworks", Namespace: ctx.Mesh.Root(),
		Source: resource.Source{File: ctx.Mesh.NetworksFile, Line: 1}, Meta: &metav1.ObjectMeta{}}
	nets := ctx.Mesh.Networks.GetNetworks()
	names := make([]string, 0, len(nets))
	for n := range nets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for i, ep := range nets[n].GetEndpoints() {
			reg := ep.GetFromRegistry()
			if reg == "" || KnownRegistries[reg] {
				continue
			}
			ctx.Report(analyze.UnknownMeshNetworksServiceRegistry, r, fmt.Sprintf("networks[%q].endpoints[%d].fromRegistry", n, i),
				"Unknown service registry %s in network %s: this mesh knows the registry Kubernetes (its cluster)", reg, n)
		}
	}
}
