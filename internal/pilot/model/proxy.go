package model

import (
	"fmt"
	"net/netip"
	"strings"
)

// ProxyType is the role a proxy plays.
type ProxyType string

// The proxy roles, as they appear first in a node id.
const (
	SidecarProxy ProxyType = "sidecar"
	Router       ProxyType = "router"
)

// Proxy is a connected (or hypothetical) proxy, identified by its node id
// "sidecar~IP~pod.ns~ns.svc.cluster.local".
type Proxy struct {
	ID        string
	Type      ProxyType
	IP        string
	PodName   string
	Namespace string
}

// ParseNodeID parses an Istio-style node id, naming the part that is wrong.
func ParseNodeID(id string) (*Proxy, error) {
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q: want 4 parts type~ip~pod.namespace~namespace.svc.%s, got %d", id, DomainSuffix, len(parts))
	}
	p := &Proxy{ID: id, Type: ProxyType(parts[0]), IP: parts[1]}
	if p.Type != SidecarProxy && p.Type != Router {
		return nil, fmt.Errorf("node id %q: type %q: want sidecar or router", id, parts[0])
	}
	if _, err := netip.ParseAddr(p.IP); err != nil {
		return nil, fmt.Errorf("node id %q: ip %q is not an IP address", id, p.IP)
	}
	name, ns, ok := strings.Cut(parts[2], ".")
	if !ok || name == "" || ns == "" {
		return nil, fmt.Errorf("node id %q: workload %q: want pod.namespace", id, parts[2])
	}
	p.PodName, p.Namespace = name, ns
	return p, nil
}

// NodeID builds the node id of a proxy.
func NodeID(t ProxyType, ip, pod, ns string) string {
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.%s", t, ip, pod, ns, ns, DomainSuffix)
}
