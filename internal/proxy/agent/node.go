package agent

import (
	"fmt"
	"net"
	"strings"
)

// NodeID builds Istio's sidecar node id: sidecar~IP~pod.ns~ns.svc.cluster.local.
func NodeID(ip, pod, namespace string) (string, error) {
	if net.ParseIP(ip) == nil {
		return "", fmt.Errorf("node id: pod IP %q is not an IP address (set --node-id or INSTANCE_IP/POD_IP)", ip)
	}
	if pod == "" || namespace == "" {
		return "", fmt.Errorf("node id: pod name and namespace are required (set --node-id or POD_NAME and POD_NAMESPACE)")
	}
	return fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, pod, namespace, namespace), nil
}

// ParseNodeID splits an Istio node id into its parts.
func ParseNodeID(id string) (typ, ip, podDotNS, domain string, err error) {
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return "", "", "", "", fmt.Errorf("node id %q: want type~ip~pod.namespace~domain", id)
	}
	switch parts[0] {
	case "sidecar", "router":
	default:
		return "", "", "", "", fmt.Errorf("node id %q: type %q must be sidecar or router", id, parts[0])
	}
	return parts[0], parts[1], parts[2], parts[3], nil
}
