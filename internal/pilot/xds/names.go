package xds

import (
	"fmt"
	"strings"
)

// Well-known resource names, as Istio spells them so tools and dashboards
// built for Istio read ours unchanged.
const (
	VirtualOutbound           = "virtualOutbound"
	VirtualInbound            = "virtualInbound"
	BlackHoleCluster          = "BlackHoleCluster"
	PassthroughCluster        = "PassthroughCluster"
	InboundPassthroughCluster = "InboundPassthroughCluster"
	OutboundCapturePort       = 15001
	InboundCapturePort        = 15006
	// SDS secret names: the workload certificate and the mesh root.
	SecretDefault = "default"
	SecretRootCA  = "ROOTCA"
)

// OutboundClusterName is "outbound|port|subset|host".
func OutboundClusterName(port uint32, subset, host string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, host)
}

// InboundClusterName is "inbound|port||".
func InboundClusterName(port uint32) string {
	return fmt.Sprintf("inbound|%d||", port)
}

// ParseClusterName splits an outbound or inbound cluster name.
func ParseClusterName(name string) (direction string, port uint32, subset, host string, ok bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return "", 0, "", "", false
	}
	if _, err := fmt.Sscanf(parts[1], "%d", &port); err != nil {
		return "", 0, "", "", false
	}
	return parts[0], port, parts[2], parts[3], true
}

// ListenerName is "address_port", e.g. "0.0.0.0_9080".
func ListenerName(addr string, port uint32) string {
	return fmt.Sprintf("%s_%d", addr, port)
}
