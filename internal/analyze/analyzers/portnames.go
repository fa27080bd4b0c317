package analyzers

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/analyze"
)

// PortNames reports Service ports whose names do not tell the protocol
// (IST0118).
type PortNames struct{}

// Metadata describes the analyzer.
func (*PortNames) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "service.PortNames", Description: "Checks Service port names follow the <protocol>[-<suffix>] convention",
		Codes: []*analyze.MessageType{analyze.PortNameIsNotUnderNamingConvention}}
}

// protocolPrefixes are the port-name prefixes that select a protocol.
var protocolPrefixes = []string{"http", "http2", "https", "grpc", "grpc-web", "tcp", "tls", "mongo", "mysql", "redis", "udp"}

// PortProtocol returns the protocol a Service port selects by appProtocol
// or name, and "" when neither says.
func PortProtocol(p corev1.ServicePort) string {
	if p.AppProtocol != nil && *p.AppProtocol != "" {
		return strings.ToLower(*p.AppProtocol)
	}
	name := strings.ToLower(p.Name)
	best := ""
	for _, pre := range protocolPrefixes {
		if (name == pre || strings.HasPrefix(name, pre+"-")) && len(pre) > len(best) {
			best = pre
		}
	}
	return best
}

// Analyze runs the checks.
func (*PortNames) Analyze(ctx *analyze.Context) {
	for _, svc := range ctx.Services() {
		if systemNamespaces[svc.Namespace] {
			continue
		}
		for i, p := range svc.Service.Spec.Ports {
			if PortProtocol(p) != "" {
				continue
			}
			ctx.Report(analyze.PortNameIsNotUnderNamingConvention, svc.Resource, fmt.Sprintf("spec.ports[%d].name", i),
				"Port name %s (port: %d, targetPort: %s) doesn't follow the naming convention of Istio port: name it <protocol>[-<suffix>] (e.g. http-web, grpc, tcp-db) or set appProtocol", p.Name, p.Port, p.TargetPort.String())
		}
	}
}
