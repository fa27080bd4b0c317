package analyzers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/analyze"
)

// ExternalNamePorts reports ports of ExternalName Services that are TCP or
// name no protocol (IST0150): without a protocol the proxy cannot tell
// their traffic from other TCP traffic to the same port, so it may not be
// forwarded to the external name.
type ExternalNamePorts struct{}

// Metadata describes the analyzer.
func (*ExternalNamePorts) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "externalcontrolplane.ExternalNameServiceTypeAnalyzer", Description: "Checks ExternalName Service ports name a protocol other than TCP",
		Codes: []*analyze.MessageType{analyze.ExternalNameServiceTypeInvalidPortName}}
}

// Analyze runs the checks.
func (*ExternalNamePorts) Analyze(ctx *analyze.Context) {
	for _, svc := range ctx.Services() {
		if svc.Service.Spec.Type != corev1.ServiceTypeExternalName {
			continue
		}
		for i, p := range svc.Service.Spec.Ports {
			if proto := PortProtocol(p); proto == "" || proto == "tcp" {
				ctx.Report(analyze.ExternalNameServiceTypeInvalidPortName, svc.Resource, fmt.Sprintf("spec.ports[%d].name", i),
					"Port name %q for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly: name it for its protocol (http-, https-, tls-, grpc-...)", p.Name)
			}
		}
	}
}
