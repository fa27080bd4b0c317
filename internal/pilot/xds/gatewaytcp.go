package xds

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/hostmatch"
	"mesh.dev/mesh/internal/pilot/model"
)

// The non-HTTP servers of a gateway: TLS passthrough (VirtualService tls
// routes by SNI), AUTO_PASSTHROUGH (the destination in the SNI), TCP and
// TLS-terminated TCP (VirtualService tcp routes). Each becomes filter
// chains ending in tcp_proxy, as istiod builds them.

// sniClaims are the server names already given a filter chain on one
// listener. Envoy refuses two chains with the same match, so, as istiod
// does, the first server or route naming a host keeps it; "" stands for
// a chain matching any server name.
type sniClaims map[string]bool

// take returns the names of names not yet claimed, claiming them; ok is
// false when nothing is left (every name was claimed before).
func (c sniClaims) take(names []string) (_ []string, ok bool) {
	if len(names) == 0 {
		if c[""] {
			return nil, false
		}
		c[""] = true
		return nil, true
	}
	var out []string
	for _, n := range names {
		if !c[n] {
			c[n] = true
			out = append(out, n)
		}
	}
	return out, len(out) > 0
}

// gatewayTCPAuthz are the AuthorizationPolicies of a gateway's pods as
// they hold on its connection-level (non-HTTP) chains.
type gatewayTCPAuthz struct {
	as authzSet // AUDIT, DENY (with CUSTOM), ALLOW
}

// filters puts the network RBAC filters ahead of a chain's tcp_proxy.
func (a gatewayTCPAuthz) filters(proxy *listenerv3.Filter) []*listenerv3.Filter {
	return append(networkRBACFilters(tcpStatPrefix(proxy), a.as), proxy)
}

// guard applies filters to chains that end in a tcp_proxy alone.
func (a gatewayTCPAuthz) guard(chains []*listenerv3.FilterChain) []*listenerv3.FilterChain {
	for _, fc := range chains {
		fc.Filters = a.filters(fc.Filters[len(fc.Filters)-1])
	}
	return chains
}

func tcpStatPrefix(f *listenerv3.Filter) string {
	tp := &tcpproxy.TcpProxy{}
	if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
		return f.GetName()
	}
	return tp.GetStatPrefix()
}

// isTCPProtocol reports whether a Gateway server protocol is served as
// opaque TCP (after TLS termination for TLS), as istiod treats it.
func isTCPProtocol(proto string) bool {
	switch proto {
	case "TCP", "TLS", "MONGO", "REDIS", "MYSQL":
		return true
	}
	return false
}

// vsBoundTo lists the VirtualServices visible from ns that are bound to a
// server's Gateway and have a host the server admits.
func (pc *PushContext) vsBoundTo(s gatewayServer, ns string) []*networkingv1.VirtualService {
	gwKey := s.gw.Namespace + "/" + s.gw.Name
	var out []*networkingv1.VirtualService
	for _, vs := range pc.vsSorted {
		if !hostmatch.Exported(pc.Snap.VirtualServiceExportTo(vs), vs.Namespace, ns) || !gatewayListed(vs.Spec.Gateways, gwKey, vs.Namespace) {
			continue
		}
		if slices.ContainsFunc(vs.Spec.Hosts, func(h string) bool { return serverHostsAllow(s.server.Hosts, h, vs.Namespace) }) {
			out = append(out, vs)
		}
	}
	return out
}

// passthroughChains builds a PASSTHROUGH server's filter chains: one per
// tls route match that applies to the server (port, gateways), matching
// the match's sniHosts the server's hosts admit, and proxying the still
// encrypted connection to the route's destinations. A server no route
// matches gets no chain: its clients' connections are closed.
func (pc *PushContext) gatewayPassthroughChains(s gatewayServer, ns string, claims sniClaims) []*listenerv3.FilterChain {
	gwKey := s.gw.Namespace + "/" + s.gw.Name
	port := s.server.Port.Number
	var out []*listenerv3.FilterChain
	for _, vs := range pc.vsBoundTo(s, ns) {
		for i, tr := range vs.Spec.Tls {
			for j, m := range tr.Match {
				if !l4Applies(m.Port, m.Gateways, m.SourceNamespace, m.SourceLabels, port, gwKey, vs.Namespace, nil) {
					continue
				}
				names, any := sniIntersect(m.SniHosts, s.server.Hosts, vs.Namespace)
				if len(names) == 0 && !any {
					continue
				}
				if any {
					names = nil
				}
				names, ok := claims.take(names)
				if !ok {
					continue
				}
				name := fmt.Sprintf("tls.%d.%s.%s.%d.%d", port, vs.Name, vs.Namespace, i, j)
				f := pc.tcpRouteFilter(name, tr.Route, vs.Namespace, routeCtx{port: port, gateway: gwKey, configNS: ns})
				if f == nil {
					continue
				}
				out = append(out, &listenerv3.FilterChain{
					Name:             name,
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names, TransportProtocol: "tls"},
					Filters:          []*listenerv3.Filter{f},
				})
			}
		}
	}
	return out
}

// sniIntersect is the part of a tls match's sniHosts a server's hosts
// admit, each the narrower of the two patterns; anyName is true when both
// are "*" (a chain for every server name).
func sniIntersect(sniHosts, serverHosts []string, vsNS string) (names []string, anyName bool) {
	seen := map[string]bool{}
	for _, sni := range sniHosts {
		for _, sh := range serverHosts {
			shNS, host, ok := strings.Cut(sh, "/")
			if !ok {
				host, shNS = sh, "*"
			}
			if shNS != "*" && shNS != "." && shNS != vsNS {
				continue
			}
			var n string
			switch {
			case hostMatches(host, sni):
				n = sni
			case hostMatches(sni, host):
				n = host
			default:
				continue
			}
			if n == "*" {
				anyName = true
				continue
			}
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names, anyName
}

// gatewayTCPFilter is a TCP server's proxy (or a TLS server's, after
// termination): the first tcp route of the VirtualServices bound to it
// whose match applies (port, gateways). nil when none does.
func (pc *PushContext) gatewayTCPFilter(s gatewayServer, ns string) *listenerv3.Filter {
	gwKey := s.gw.Namespace + "/" + s.gw.Name
	port := s.server.Port.Number
	for _, vs := range pc.vsBoundTo(s, ns) {
		for i, tr := range vs.Spec.Tcp {
			if !tcpMatchApplies(tr.Match, port, gwKey, vs.Namespace, nil) {
				continue
			}
			name := fmt.Sprintf("tcp.%d.%s.%s.%d", port, vs.Name, vs.Namespace, i)
			if f := pc.tcpRouteFilter(name, tr.Route, vs.Namespace, routeCtx{port: port, gateway: gwKey, configNS: ns}); f != nil {
				return f
			}
		}
	}
	return nil
}

// l4Source is the client side a sidecar's tls and tcp routes are built
// for: the sidecars' namespace and labels.
type l4Source struct {
	ns     string
	labels map[string]string
}

// tcpMatchApplies reports whether a tcp route's matches (none: always)
// admit a connection to port at gateway gw ("mesh" for sidecars, with
// src their namespace and labels; nil at gateways).
func tcpMatchApplies(ms []*networkingapi.L4MatchAttributes, port uint32, gw, vsNS string, src *l4Source) bool {
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if l4Applies(m.Port, m.Gateways, m.SourceNamespace, m.SourceLabels, port, gw, vsNS, src) {
			return true
		}
	}
	return false
}

// l4Applies reports whether one tls or tcp match (all its conditions)
// admits a connection to port at gw, as istiod decides it: on sidecars
// (src set) the port, the match's gateways (mesh), the client's namespace
// (sourceNamespace) and its labels (sourceLabels, a subset of theirs); at
// gateways (src nil) the port and the gateways only, since Istio applies
// source matches to the mesh alone (analyze reports them on rules bound
// to gateways only).
func l4Applies(mPort uint32, mGateways []string, srcNS string, srcLabels map[string]string, port uint32, gw, vsNS string, src *l4Source) bool {
	if mPort != 0 && mPort != port {
		return false
	}
	if len(mGateways) > 0 && !gatewayListed(mGateways, gw, vsNS) {
		return false
	}
	if src == nil {
		return true
	}
	if srcNS != "" && srcNS != src.ns {
		return false
	}
	return len(srcLabels) == 0 || labelsMatch(srcLabels, src.labels)
}

// l4MatchesOnLabels reports whether a tls or tcp rule of vs matches on
// client labels.
func l4MatchesOnLabels(vs *networkingv1.VirtualService) bool {
	for _, tr := range vs.Spec.Tls {
		for _, m := range tr.Match {
			if len(m.SourceLabels) > 0 {
				return true
			}
		}
	}
	for _, tr := range vs.Spec.Tcp {
		for _, m := range tr.Match {
			if len(m.SourceLabels) > 0 {
				return true
			}
		}
	}
	return false
}

// tcpRouteFilter is the tcp_proxy of a tls or tcp route's destinations:
// their clusters by weight (one destination without a weight takes all).
// nil when no destination has a weight.
func (pc *PushContext) tcpRouteFilter(statPrefix string, route []*networkingapi.RouteDestination, vsNS string, rc routeCtx) *listenerv3.Filter {
	var ws []*tcpproxy.TcpProxy_WeightedCluster_ClusterWeight
	for _, d := range route {
		w := uint32(d.Weight)
		if w == 0 && len(route) == 1 {
			w = 100
		}
		if w == 0 || d.Destination == nil {
			continue
		}
		ws = append(ws, &tcpproxy.TcpProxy_WeightedCluster_ClusterWeight{Name: pc.destinationCluster(d.Destination, vsNS, rc), Weight: w})
	}
	if len(ws) == 0 {
		return nil
	}
	return tcpProxyWeighted(statPrefix, ws)
}

// autoPassthroughChains serves an AUTO_PASSTHROUGH server: a chain per
// cluster the gateway has, matching the SNI a mesh client's mTLS carries
// for it (outbound_.PORT_.SUBSET_.HOST, Istio's format), proxying the
// connection, still mTLS end to end, to that cluster. Only hosts the
// server admits get chains.
func (pc *PushContext) autoPassthroughChains(s gatewayServer, ns string, services []*model.Service, claims sniClaims) []*listenerv3.FilterChain {
	var out []*listenerv3.FilterChain
	for _, svc := range services {
		if !serverHostsAllow(s.server.Hosts, svc.Hostname, svc.Namespace) {
			continue
		}
		subsets := []string{""}
		if dr := pc.destinationRule(ns, svc); dr != nil {
			for _, ss := range dr.Spec.Subsets {
				subsets = append(subsets, ss.Name)
			}
		}
		for _, p := range svc.Ports {
			for _, ss := range subsets {
				sni := fmt.Sprintf("outbound_.%d_.%s_.%s", p.Port, ss, svc.Hostname)
				if _, ok := claims.take([]string{sni}); !ok {
					continue
				}
				cluster := sni // its SNI-DNAT twin: no TLS of the gateway's own (sniDNATClusters)
				out = append(out, &listenerv3.FilterChain{
					Name:             sni,
					FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{sni}, TransportProtocol: "tls"},
					Filters:          []*listenerv3.Filter{tcpProxyFilter(cluster, cluster)},
				})
			}
		}
	}
	return out
}

// sniDNATClusters are the clusters an AUTO_PASSTHROUGH server proxies to:
// each of svc's outbound clusters under its SNI name, with the same
// endpoints but no transport socket, since the client's mTLS goes
// through untouched (istiod's sni-dnat clusters).
func sniDNATClusters(its []*item) []*item {
	var out []*item
	for _, it := range its {
		c, ok := it.msg.(*clusterv3.Cluster)
		if !ok {
			continue
		}
		parts := strings.SplitN(c.GetName(), "|", 4)
		if len(parts) != 4 || parts[0] != "outbound" {
			continue
		}
		d := proto.Clone(c).(*clusterv3.Cluster)
		d.Name = fmt.Sprintf("outbound_.%s_.%s_.%s", parts[1], parts[2], parts[3])
		d.TransportSocket, d.TransportSocketMatches = nil, nil
		if d.EdsClusterConfig != nil && d.EdsClusterConfig.ServiceName == "" {
			d.EdsClusterConfig.ServiceName = c.GetName() // EDS keeps the original's endpoints
		}
		out = append(out, newItem(d.Name, d))
	}
	return out
}
