package analyzers

import (
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// ServiceEntryAddresses reports ServiceEntries with TCP-like ports and no
// addresses (IST0134): without an address or SNI the proxy cannot tell
// their traffic from other traffic on the same port.
type ServiceEntryAddresses struct{}

// Metadata describes the analyzer.
func (*ServiceEntryAddresses) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "serviceentry.Addresses", Description: "Checks ServiceEntries with TCP ports have addresses",
		Codes: []*analyze.MessageType{analyze.ServiceEntryAddressesRequired}}
}

var opaqueProtocols = map[string]bool{"": true, "TCP": true, "UDP": true, "MONGO": true, "MYSQL": true, "REDIS": true}

// Analyze runs the checks.
func (*ServiceEntryAddresses) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("ServiceEntry") {
		se, ok := r.Object.(*networking.ServiceEntry)
		if !ok || len(se.Spec.Addresses) > 0 {
			continue
		}
		for _, p := range se.Spec.Ports {
			if opaqueProtocols[strings.ToUpper(p.Protocol)] {
				proto := p.Protocol
				if proto == "" {
					proto = "unset (TCP)"
				}
				ctx.Report(analyze.ServiceEntryAddressesRequired, r, "spec.addresses",
					"ServiceEntry addresses are required for this protocol: port %d has protocol %s, which carries no host name, so add the service's IP addresses or CIDR blocks", p.Number, proto)
				break
			}
		}
	}
}
