package xds

import (
	"fmt"

	meshapi "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

// unknownTraffic says what a scope's proxies do with outbound traffic no
// service they see claims (Istio's outboundTrafficPolicy): ALLOW_ANY sends
// it to its original destination (or to the Sidecar's egressProxy),
// REGISTRY_ONLY to the BlackHole: a TCP connection is closed, an HTTP
// request gets 502.
type unknownTraffic struct {
	allowAny bool
	cluster  string // where unknown TCP goes and, under ALLOW_ANY, unknown HTTP
}

// outboundMode is the mode that applies to proxies under sidecar (nil:
// none): the Sidecar's outboundTrafficPolicy when it has one, else the
// mesh config's, else Istio's default ALLOW_ANY. A mesh config that names
// outboundTrafficPolicy without a mode is REGISTRY_ONLY, the API's zero
// value, as in Istio.
func outboundMode(mesh *meshapi.MeshConfig, sidecar *networkingv1.Sidecar) (allowAny bool, egressProxy *networkingapi.Destination) {
	if sidecar != nil && sidecar.Spec.OutboundTrafficPolicy != nil {
		p := sidecar.Spec.OutboundTrafficPolicy
		if p.Mode == networkingapi.OutboundTrafficPolicy_ALLOW_ANY {
			return true, p.EgressProxy
		}
		return false, nil
	}
	p := mesh.GetOutboundTrafficPolicy()
	if p == nil {
		return true, nil
	}
	// ALLOW_ANY_DYNAMIC_DNS is refused when pilot reads the mesh config
	// (CheckOutboundTrafficPolicy); anything but ALLOW_ANY is closed.
	return p.Mode == meshapi.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, nil
}

// unknownTrafficFor works out a scope's policy. An egressProxy whose host
// and port are not among the services the scope sees has no cluster on
// its proxies: unknown traffic is then dropped rather than let out
// another way (the field table says so).
func (pc *PushContext) unknownTrafficFor(sc *scope) unknownTraffic {
	allowAny, ep := outboundMode(pc.Snap.Mesh, sc.sidecar)
	if !allowAny {
		return unknownTraffic{cluster: BlackHoleCluster}
	}
	if ep == nil {
		return unknownTraffic{allowAny: true, cluster: PassthroughCluster}
	}
	host := resolveHost(ep.Host, sc.sidecar.Namespace)
	port := ep.GetPort().GetNumber()
	for _, svc := range sc.services {
		if svc.Hostname != host {
			continue
		}
		if _, ok := svc.PortByNumber(port); ok {
			return unknownTraffic{allowAny: true, cluster: OutboundClusterName(port, ep.Subset, host)}
		}
	}
	return unknownTraffic{allowAny: true, cluster: BlackHoleCluster}
}

// CheckOutboundTrafficPolicy refuses what the mesh config's
// outboundTrafficPolicy asks for that pilot cannot carry out:
// ALLOW_ANY_DYNAMIC_DNS (unknown HTTP hosts resolved by DNS) and its tls.
// Neither may silently become another mode: one would let out traffic the
// user meant to hold, the other hold traffic meant to go.
func CheckOutboundTrafficPolicy(mc *meshapi.MeshConfig) error {
	p := mc.GetOutboundTrafficPolicy()
	switch p.GetMode() {
	case meshapi.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, meshapi.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY:
	default:
		return fmt.Errorf("outboundTrafficPolicy.mode: %s is not supported; use ALLOW_ANY or REGISTRY_ONLY (with ServiceEntries for the hosts to reach)", p.GetMode())
	}
	if p.GetTls() != nil {
		return fmt.Errorf("outboundTrafficPolicy.tls: applies only to ALLOW_ANY_DYNAMIC_DNS, which is not supported; remove it (a DestinationRule's tls originates TLS to a ServiceEntry host)")
	}
	return nil
}
