package analyzers

import (
	"fmt"
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/pilot/inject"
)

// ServiceEntryAddresses reports ServiceEntries with TCP-like ports and no
// addresses (IST0134): without an address or SNI the proxy cannot tell
// their traffic from other traffic on the same port. Unlike istioctl it
// stays quiet when the mesh config turns on DNS capture and
// auto-allocation for every proxy: pilot then gives such a host an
// address of its own, except wildcard hosts and resolution NONE, which
// are still reported, saying so.
type ServiceEntryAddresses struct{}

// Metadata describes the analyzer.
func (*ServiceEntryAddresses) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "serviceentry.Addresses", Description: "Checks ServiceEntries with TCP ports have addresses",
		Codes: []*analyze.MessageType{analyze.ServiceEntryAddressesRequired}}
}

var opaqueProtocols = map[string]bool{"": true, "TCP": true, "UDP": true, "MONGO": true, "MYSQL": true, "REDIS": true}

// Analyze runs the checks.
func (*ServiceEntryAddresses) Analyze(ctx *analyze.Context) {
	allocating := meshAutoAllocates(ctx.Mesh)
	for _, r := range ctx.ByKind("ServiceEntry") {
		se, ok := r.Object.(*networking.ServiceEntry)
		if !ok || len(se.Spec.Addresses) > 0 {
			continue
		}
		why := ""
		if allocating {
			why = allocationMisses(se)
			if why == "" {
				continue
			}
		}
		for _, p := range se.Spec.Ports {
			if opaqueProtocols[strings.ToUpper(p.Protocol)] {
				proto := p.Protocol
				if proto == "" {
					proto = "unset (TCP)"
				}
				ctx.Report(analyze.ServiceEntryAddressesRequired, r, "spec.addresses",
					"ServiceEntry addresses are required for this protocol: port %d has protocol %s, which carries no host name, so add the service's IP addresses or CIDR blocks%s", p.Number, proto, why)
				break
			}
		}
	}
}

// meshAutoAllocates reports whether the mesh config's default proxy
// metadata turns on both DNS capture and auto-allocation: the allocated
// address reaches an app only through the proxy's DNS answers.
func meshAutoAllocates(m *analyze.Mesh) bool {
	if m == nil || m.Config == nil {
		return false
	}
	md := m.Config.GetDefaultConfig().GetProxyMetadata()
	on := func(key string) bool { v, err := strconv.ParseBool(md[key]); return err == nil && v }
	return on(inject.DNSCaptureKey) && on(inject.DNSAutoAllocateKey)
}

// allocationMisses says why DNS auto-allocation gives se no address, ""
// when it does.
func allocationMisses(se *networking.ServiceEntry) string {
	if se.Spec.Resolution == networkingapi.ServiceEntry_NONE {
		return " (DNS auto-allocation, on in the mesh config, skips resolution NONE)"
	}
	for _, h := range se.Spec.Hosts {
		if strings.HasPrefix(h, "*") {
			return fmt.Sprintf(" (DNS auto-allocation, on in the mesh config, skips the wildcard host %q)", h)
		}
	}
	return ""
}
