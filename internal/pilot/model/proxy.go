package model

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
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
	// Metadata is what the proxy's xDS node said about it (zero for a
	// hypothetical proxy).
	Metadata NodeMetadata
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

// NodeMetadata is what a proxy tells pilot about itself in the xDS node's
// metadata, under Istio's keys.
type NodeMetadata struct {
	IstioVersion     string      // ISTIO_VERSION: the proxy's release
	ClusterID        string      // CLUSTER_ID: the cluster the workload runs in
	InterceptionMode string      // INTERCEPTION_MODE: REDIRECT (default), TPROXY or NONE
	AppContainers    []string    // APP_CONTAINERS: the pod's application containers
	PodPorts         []Container // POD_PORTS: the containers' declared ports
	// DNSCapture (DNS_CAPTURE, from ISTIO_META_DNS_CAPTURE) asks for the
	// name table (NDS): the proxy answers the pod's DNS.
	DNSCapture bool `json:",omitempty"`
	// DNSAutoAllocate (DNS_AUTO_ALLOCATE) gives the ServiceEntry hosts
	// without addresses their auto-allocated ones, in the name table and
	// in the proxy's listeners.
	DNSAutoAllocate bool `json:",omitempty"`
}

// Container is one declared container port of POD_PORTS.
type Container struct {
	Name          string `json:"name,omitempty"`
	ContainerPort uint32 `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// The interception modes Istio names.
var interceptionModes = map[string]bool{"REDIRECT": true, "TPROXY": true, "NONE": true}

// ParseNodeMetadata reads the keys of md that pilot uses, naming the key
// whose value is malformed. Keys it does not use are ignored, as Istio's
// pilot ignores unknown ones.
func ParseNodeMetadata(md *structpb.Struct) (NodeMetadata, error) {
	var m NodeMetadata
	f := md.GetFields()
	str := func(key string) (string, error) {
		v, ok := f[key]
		if !ok {
			return "", nil
		}
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return "", fmt.Errorf("node metadata %s: want a string", key)
		}
		return s.StringValue, nil
	}
	var err error
	if m.IstioVersion, err = str("ISTIO_VERSION"); err != nil {
		return m, err
	}
	if m.ClusterID, err = str("CLUSTER_ID"); err != nil {
		return m, err
	}
	if m.InterceptionMode, err = str("INTERCEPTION_MODE"); err != nil {
		return m, err
	}
	if m.InterceptionMode == "" {
		m.InterceptionMode = "REDIRECT"
	} else if !interceptionModes[m.InterceptionMode] {
		return m, fmt.Errorf("node metadata INTERCEPTION_MODE %q: want REDIRECT, TPROXY or NONE", m.InterceptionMode)
	}
	for key, dst := range map[string]*bool{"DNS_CAPTURE": &m.DNSCapture, "DNS_AUTO_ALLOCATE": &m.DNSAutoAllocate} {
		v, err := str(key)
		if err != nil {
			return m, err
		}
		if v == "" {
			continue
		}
		if *dst, err = strconv.ParseBool(v); err != nil {
			return m, fmt.Errorf("node metadata %s %q: want true or false", key, v)
		}
	}
	apps, err := str("APP_CONTAINERS")
	if err != nil {
		return m, err
	}
	for _, c := range strings.Split(apps, ",") {
		if c = strings.TrimSpace(c); c != "" {
			m.AppContainers = append(m.AppContainers, c)
		}
	}
	ports, err := str("POD_PORTS")
	if err != nil {
		return m, err
	}
	if ports != "" {
		if err := json.Unmarshal([]byte(ports), &m.PodPorts); err != nil {
			return m, fmt.Errorf("node metadata POD_PORTS: want a JSON list of {name, containerPort, protocol}: %w", err)
		}
	}
	return m, nil
}
