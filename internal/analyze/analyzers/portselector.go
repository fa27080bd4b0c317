package analyzers

import (
	"strings"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// PortSelector reports VirtualService destinations (routes and mirrors,
// mesh or gateway) that name a Service or ServiceEntry host with several
// ports but no port (IST0112), as Istio does.
type PortSelector struct{}

// Metadata describes the analyzer.
func (*PortSelector) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "virtualservice.DestinationPort", Description: "Checks routes say which port of a multi-port service to use",
		Codes: []*analyze.MessageType{analyze.VirtualServiceDestinationPortSelectorRequired}}
}

// Analyze runs the checks.
func (*PortSelector) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok {
			continue
		}
		ForEachDestination(vs, func(path DestinationPath, d *v1alpha3.Destination) {
			if d == nil || (d.Port != nil && d.Port.Number != 0) {
				return
			}
			h, ok := ctx.LookupHost(d.Host, r.Namespace)
			if !ok || (h.Service == nil && h.ServiceEntry == nil) || len(h.Ports) < 2 {
				return
			}
			ctx.Report(analyze.VirtualServiceDestinationPortSelectorRequired, r, path.String()+".port",
				"This VirtualService routes to a service %q that exposes multiple ports [%s]. Specifying a port in the destination is required to disambiguate: set port.number", d.Host, strings.ReplaceAll(portList(h.Ports), ", ", " "))
		})
	}
}
