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

// protocolNames are the names (a port name's prefix before "-", or an
// appProtocol) that select a protocol, as Istio parses them, with the
// appProtocol values mesh's pilot also reads (h2c and Kubernetes'
// kubernetes.io/h1 and kubernetes.io/h2c) and thrift, each to the
// protocol it selects.
var protocolNames = map[string]string{
	"http": "http", "http_proxy": "http_proxy", "http2": "http2", "https": "https", "grpc": "grpc",
	"tcp": "tcp", "tls": "tls", "udp": "udp", "mongo": "mongo", "mysql": "mysql", "redis": "redis",
	"thrift": "thrift", "h2c": "http2", "kubernetes.io/h2c": "http2", "http1.1": "http", "kubernetes.io/h1": "http",
}

// wellKnownPorts are TCP by default when nothing names their protocol
// (SMTP, DNS, MySQL, MongoDB), as for Istio.
var wellKnownPorts = map[int32]bool{25: true, 53: true, 3306: true, 27017: true}

// PortProtocol returns the protocol a Service port selects, as Istio
// works it out: a UDP port is "udp"; otherwise its appProtocol, when set,
// else its name, is read up to the first "-" (grpc-web whole); a
// well-known port named for nothing is "tcp". It returns "" when nothing
// selects a protocol.
func PortProtocol(p corev1.ServicePort) string {
	if p.Protocol == corev1.ProtocolUDP {
		return "udp"
	}
	name := strings.ToLower(p.Name)
	if p.AppProtocol != nil {
		name = strings.ToLower(*p.AppProtocol)
	}
	if name == "grpc-web" || strings.HasPrefix(name, "grpc-web-") {
		return "grpc-web"
	}
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	if proto, ok := protocolNames[name]; ok {
		return proto
	}
	if wellKnownPorts[p.Port] {
		return "tcp"
	}
	return ""
}

// Analyze runs the checks.
func (*PortNames) Analyze(ctx *analyze.Context) {
	for _, svc := range ctx.Services() {
		// ExternalName Services get IST0150 instead, as from Istio.
		if systemNamespaces[svc.Namespace] || svc.Service.Spec.Type == corev1.ServiceTypeExternalName {
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
