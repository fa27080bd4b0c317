package analyzers

import (
	"mesh.dev/mesh/internal/analyze"
)

// UnsupportedKinds reports resources of Istio and Gateway API kinds this
// mesh does not read at all (MSH0004): the API server accepts them, so without a
// message nobody would learn they do nothing.
type UnsupportedKinds struct{}

// unsupportedKinds maps group/kind to what happens instead.
var unsupportedKinds = map[string]string{
	"networking.istio.io/EnvoyFilter":   "mesh-proxy's configuration is not patched; the filters and settings it adds are absent",
	"networking.istio.io/ProxyConfig":   "proxies keep the mesh defaults",
	"networking.istio.io/WorkloadGroup": "no WorkloadEntry is made from it; write the WorkloadEntries",
	"extensions.istio.io/WasmPlugin":    "no Wasm module is loaded",
	// Gateway API kinds whose CRDs the base chart ships (the standard
	// channel is installed whole) but pilot does not read yet.
	"gateway.networking.k8s.io/TCPRoute":         "no listener takes it; mesh's gateways serve HTTP and HTTPS listeners only",
	"gateway.networking.k8s.io/TLSRoute":         "no listener takes it; mesh's gateways serve HTTP and HTTPS listeners only",
	"gateway.networking.k8s.io/UDPRoute":         "no listener takes it; mesh's gateways serve HTTP and HTTPS listeners only",
	"gateway.networking.k8s.io/ListenerSet":      "its listeners are not added to any Gateway",
	"gateway.networking.k8s.io/BackendTLSPolicy": "connections from gateways to the backend stay as they are, without the TLS it asks for",
}

// unsupportedKindNames are the kinds of unsupportedKinds, in report order.
var unsupportedKindNames = []string{"EnvoyFilter", "ProxyConfig", "WorkloadGroup", "WasmPlugin",
	"TCPRoute", "TLSRoute", "UDPRoute", "ListenerSet", "BackendTLSPolicy"}

// Metadata describes the analyzer.
func (*UnsupportedKinds) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "mesh.UnsupportedKinds", Description: "Checks for Istio and Gateway API resources of kinds the mesh does not read",
		Codes: []*analyze.MessageType{analyze.KindNotSupported}}
}

// Analyze runs the checks.
func (*UnsupportedKinds) Analyze(ctx *analyze.Context) {
	// Telemetry is read (for IST0157, IST0159, IST0160) and its not
	// carrying out is MSH0003's, from the field table.
	for _, kind := range unsupportedKindNames {
		for _, r := range ctx.ByKind(kind) {
			if instead, ok := unsupportedKinds[r.Group+"/"+kind]; ok {
				ctx.Report(analyze.KindNotSupported, r, "spec", "%s is not supported by this mesh and has no effect: %s", kind, instead)
			}
		}
	}
}
