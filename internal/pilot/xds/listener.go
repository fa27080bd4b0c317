package xds

import (
	"fmt"
	"slices"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	originaldst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/pilot/model"
)

const (
	hcmFilterName      = "envoy.filters.network.http_connection_manager"
	tcpProxyFilterName = "envoy.filters.network.tcp_proxy"
)

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}
}

func faultFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: faultFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}}
}

// upgradeConfigs lets WebSocket upgrades through every HTTP connection
// manager, sidecar (both directions) and gateway alike, as Istio configures
// its HCMs; without it Envoy and mesh-proxy answer an Upgrade with 403.
func upgradeConfigs() []*hcmv3.HttpConnectionManager_UpgradeConfig {
	return []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
}

// hcmRDS is an HTTP connection manager fetching its routes over ADS.
func (pc *PushContext) hcmRDS(statPrefix, routeName string, filters ...*hcmv3.HttpFilter) *listenerv3.Filter {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix:     statPrefix,
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource(), RouteConfigName: routeName}},
		HttpFilters:    append(filters, routerFilter()),
		UpgradeConfigs: upgradeConfigs(),
	}
	pc.pathNormalization(h)
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}}
}

func (pc *PushContext) hcmInline(statPrefix string, rc *routev3.RouteConfiguration, filters ...*hcmv3.HttpFilter) *listenerv3.Filter {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix:     statPrefix,
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
		HttpFilters:    append(filters, routerFilter()),
		UpgradeConfigs: upgradeConfigs(),
	}
	pc.pathNormalization(h)
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}}
}

func tcpProxyFilter(statPrefix, cluster string) *listenerv3.Filter {
	tp := &tcpproxy.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcpproxy.TcpProxy_Cluster{Cluster: cluster}}
	return &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

func tcpProxyWeighted(statPrefix string, clusters []*tcpproxy.TcpProxy_WeightedCluster_ClusterWeight) *listenerv3.Filter {
	if len(clusters) == 1 {
		return tcpProxyFilter(statPrefix, clusters[0].Name)
	}
	tp := &tcpproxy.TcpProxy{StatPrefix: statPrefix, ClusterSpecifier: &tcpproxy.TcpProxy_WeightedClusters{
		WeightedClusters: &tcpproxy.TcpProxy_WeightedCluster{Clusters: clusters},
	}}
	return &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

// outboundListeners builds one listener per port of the scope's services,
// bound to no socket: traffic reaches them through virtualOutbound's
// original-destination hand-off, as in Istio. lbls are the labels of the
// proxies they are for (tls and tcp routes may match on them).
func (pc *PushContext) outboundListeners(sc *scope, lbls map[string]string) []*item {
	src := &l4Source{ns: sc.ns, labels: lbls}
	type portSvcs struct {
		http bool
		tcp  []*model.Service // TCP, TLS, RPC and detected (auto) ports
	}
	ports := map[uint32]*portSvcs{}
	for _, svc := range sc.services {
		for _, p := range svc.Ports {
			ps := ports[p.Port]
			if ps == nil {
				ps = &portSvcs{}
				ports[p.Port] = ps
			}
			if p.Protocol.IsHTTP() {
				ps.http = true
			} else {
				ps.tcp = append(ps.tcp, svc)
			}
		}
	}
	nums := make([]uint32, 0, len(ports))
	for n := range ports {
		if n == OutboundCapturePort || n == InboundCapturePort {
			continue
		}
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	var out []*item
	for _, n := range nums {
		ps := ports[n]
		name := ListenerName("0.0.0.0", n)
		l := &listenerv3.Listener{
			Name:             name,
			Address:          socketAddress("0.0.0.0", n),
			BindToPort:       wrapperspb.Bool(false),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		}
		// TLS and HTTPS ports route by SNI first: the VirtualServices' tls
		// routes, then, for a service without an address (a ServiceEntry
		// naming hosts only), its own hosts.
		var unaddressed []*model.Service
		var sniffed, sniffedDefault bool
		claims := map[string]sniClaims{}
		for _, svc := range ps.tcp {
			p, _ := svc.PortByNumber(n)
			if p.Protocol != model.ProtocolTLS && p.Protocol != model.ProtocolHTTPS {
				continue
			}
			if claims[svc.Address] == nil {
				claims[svc.Address] = sniClaims{}
			}
			l.FilterChains = append(l.FilterChains, pc.outboundTLSChains(svc, n, src, claims[svc.Address])...)
		}
		for _, svc := range ps.tcp {
			if svc.Address == "" && sniRouted(svc, n) {
				continue // its chains above
			}
			p, _ := svc.PortByNumber(n)
			if svc.Address == "" {
				unaddressed = append(unaddressed, svc)
				if p.Protocol == model.ProtocolAuto && !ps.http && !sniffedDefault {
					// HTTP detected to a host without an address goes by
					// its Host header, as on an HTTP port.
					sniffedDefault = true
					l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
						Name:             name + "-http",
						FilterChainMatch: sniffedHTTPMatch(nil),
						Filters:          []*listenerv3.Filter{pc.hcmRDS("outbound_"+name, fmt.Sprint(n), faultFilter())},
					})
				}
				continue
			}
			match := &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{cidr(svc.Address)}}
			if p.Protocol == model.ProtocolAuto {
				// Detected HTTP to the address takes the port's routes
				// (VirtualService http rules); anything else its TCP chain.
				sniffed = true
				l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
					Name:             fmt.Sprintf("%s_%d-http", svc.Address, n),
					FilterChainMatch: sniffedHTTPMatch(match),
					Filters:          []*listenerv3.Filter{pc.hcmRDS("outbound_"+name, fmt.Sprint(n), faultFilter())},
				})
			}
			l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
				Name:             fmt.Sprintf("%s_%d", svc.Address, n),
				FilterChainMatch: match,
				Filters:          []*listenerv3.Filter{pc.outboundTCPFilter(svc, n, src)},
			})
		}
		sniffed = sniffed || sniffedDefault
		switch {
		case ps.http:
			l.DefaultFilterChain = &listenerv3.FilterChain{
				Name:    name,
				Filters: []*listenerv3.Filter{pc.hcmRDS("outbound_"+name, fmt.Sprint(n), faultFilter())},
			}
		case len(unaddressed) == 1:
			l.DefaultFilterChain = &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{pc.outboundTCPFilter(unaddressed[0], n, src)}}
		default:
			l.DefaultFilterChain = &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{tcpProxyFilter(sc.unknown.cluster, sc.unknown.cluster)}}
		}
		if slices.ContainsFunc(l.FilterChains, func(fc *listenerv3.FilterChain) bool { return len(fc.GetFilterChainMatch().GetServerNames()) > 0 }) {
			l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspectorFilter()}
		}
		if sniffed {
			pc.withDetection(l, tlsInspectorFilter())
		}
		out = append(out, newItem(name, l))
	}
	return out
}

func tlsInspectorFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspector.TlsInspector{})},
	}
}

// sniRouted reports whether svc's port is routed by SNI alone: a TLS or
// HTTPS port of a service without an address.
func sniRouted(svc *model.Service, port uint32) bool {
	p, _ := svc.PortByNumber(port)
	return svc.Address == "" && (p.Protocol == model.ProtocolTLS || p.Protocol == model.ProtocolHTTPS)
}

// outboundTLSChains are the SNI filter chains of a TLS or HTTPS service
// port on the sidecars of src: one per tls route match of the
// VirtualServices bound to the mesh for the service (port, gateways,
// sourceNamespace and sourceLabels checked; server_names = sniHosts), and,
// for a service without an address, one for its own host to its cluster
// (tcp routes honoured). Chains of an addressed service also match its
// address.
func (pc *PushContext) outboundTLSChains(svc *model.Service, port uint32, src *l4Source, claims sniClaims) []*listenerv3.FilterChain {
	proxyNS := src.ns
	var prefix []*corev3.CidrRange
	if svc.Address != "" {
		prefix = []*corev3.CidrRange{cidr(svc.Address)}
	}
	def := OutboundClusterName(port, "", svc.Hostname)
	var out []*listenerv3.FilterChain
	for _, vs := range pc.virtualServices(svc.Hostname, proxyNS) {
		for i, tr := range vs.Spec.Tls {
			for j, m := range tr.Match {
				if !l4Applies(m.Port, m.Gateways, m.SourceNamespace, m.SourceLabels, port, "mesh", vs.Namespace, src) {
					continue
				}
				var names []string
				for _, h := range m.SniHosts {
					if h == "*" {
						names = nil
						break
					}
					names = append(names, h)
				}
				names, ok := claims.take(names)
				if !ok {
					continue
				}
				f := pc.tcpRouteFilter(def, tr.Route, vs.Namespace, routeCtx{port: port, gateway: "mesh"})
				if f == nil {
					continue
				}
				out = append(out, &listenerv3.FilterChain{
					Name:             fmt.Sprintf("%s.tls.%s.%s.%d.%d", def, vs.Name, vs.Namespace, i, j),
					FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: prefix, ServerNames: names, TransportProtocol: "tls"},
					Filters:          []*listenerv3.Filter{f},
				})
			}
		}
	}
	if svc.Address == "" {
		if names, ok := claims.take([]string{svc.Hostname}); ok {
			out = append(out, &listenerv3.FilterChain{
				Name:             def,
				FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names, TransportProtocol: "tls"},
				Filters:          []*listenerv3.Filter{pc.outboundTCPFilter(svc, port, src)},
			})
		}
	}
	return out
}

// outboundTCPFilter proxies a TCP service port for the sidecars of src,
// honouring the first TCP rule of the VirtualServices they see whose match
// applies (port, gateways: mesh, sourceNamespace, sourceLabels). An RPC
// protocol port gets generic_proxy routed by its MetaRoute instead.
func (pc *PushContext) outboundTCPFilter(svc *model.Service, port uint32, src *l4Source) *listenerv3.Filter {
	if p, _ := svc.PortByNumber(port); isGeneric(p.Protocol) {
		return pc.outboundGenericFilter(svc, port, src.ns)
	}
	def := OutboundClusterName(port, "", svc.Hostname)
	for _, vs := range pc.virtualServices(svc.Hostname, src.ns) {
		for _, tr := range vs.Spec.Tcp {
			if !tcpMatchApplies(tr.Match, port, "mesh", vs.Namespace, src) {
				continue
			}
			if f := pc.tcpRouteFilter(def, tr.Route, vs.Namespace, routeCtx{port: port, gateway: "mesh"}); f != nil {
				return f
			}
		}
	}
	return tcpProxyFilter(def, def)
}

// virtualOutbound is the capture listener: a destination port no
// listener serves goes where the scope's outboundTrafficPolicy says.
func virtualOutbound(sc *scope) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:             VirtualOutbound,
		Address:          socketAddress("0.0.0.0", OutboundCapturePort),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Name:    VirtualOutbound + "-catchall-tcp",
			Filters: []*listenerv3.Filter{tcpProxyFilter(sc.unknown.cluster, sc.unknown.cluster)},
		}},
	}
}

// inboundPort is one port the workload itself serves.
type inboundPort struct {
	port     uint32 // the container port
	protocol model.Protocol
	services []*model.Service // the services targeting it, first the one that decided protocol
}

// inboundPorts lists the target ports of the services a workload backs.
func inboundPorts(services []*model.Service, namedPorts map[string]uint32) []inboundPort {
	seen := map[uint32]int{} // port → index in out
	var out []inboundPort
	for _, svc := range services {
		for _, p := range svc.Ports {
			tp := p.TargetPort
			if tp == 0 {
				if n, ok := namedPorts[p.Name]; ok {
					tp = n
				} else {
					tp = p.Port
				}
			}
			if tp == OutboundCapturePort || tp == InboundCapturePort {
				continue
			}
			if i, ok := seen[tp]; ok {
				if !slices.Contains(out[i].services, svc) {
					out[i].services = append(out[i].services, svc)
				}
				continue
			}
			seen[tp] = len(out)
			out = append(out, inboundPort{port: tp, protocol: p.Protocol, services: []*model.Service{svc}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// virtualInbound builds the 15006 listener: per served port a plaintext
// and/or mTLS filter chain as PeerAuthentication says, with authorization.
func (pc *PushContext) virtualInbound(w *workload, ports []inboundPort) *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:             VirtualInbound,
		Address:          socketAddress("0.0.0.0", InboundCapturePort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters: []*listenerv3.ListenerFilter{
			{Name: "envoy.filters.listener.original_dst", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldst.OriginalDst{})}},
			tlsInspectorFilter(),
		},
		ListenerFiltersTimeout:           pc.detectionTimeout(),
		ContinueOnListenerFiltersTimeout: true,
	}
	as := pc.authzPolicies(w.namespace, w.labels)
	// On TCP ports (and the passthrough chains) there is no ext_authz
	// check: what a CUSTOM policy selects is denied there.
	tcpAuthz := as
	tcpAuthz.deny = append(as.deny[:len(as.deny):len(as.deny)], as.custom...)
	customHTTP := pc.customFilters(as.custom)
	jf := pc.jwtFilter(pc.requestAuthns(w.namespace, w.labels), pc.scopeFor(w.namespace, w.labels))
	sniffed := false // a plaintext chain matches detected HTTP
	for _, p := range ports {
		cluster := InboundClusterName(p.port)
		mode := pc.mtlsMode(w.namespace, w.labels, p.port)
		filters := func(http bool) []*listenerv3.Filter {
			if http {
				rc := &routev3.RouteConfiguration{
					Name: cluster,
					VirtualHosts: []*routev3.VirtualHost{{
						Name:    fmt.Sprintf("inbound|http|%d", p.port),
						Domains: []string{"*"},
						Routes: []*routev3.Route{{
							Name:  "default",
							Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
							Action: &routev3.Route_Route{Route: &routev3.RouteAction{
								ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
								Timeout:          durationpb.New(0),
							}},
						}},
					}},
				}
				var hf []*hcmv3.HttpFilter
				if jf != nil {
					hf = append(hf, jf) // request.auth attributes before authorization reads them
				}
				hf = append(hf, customHTTP...) // CUSTOM, then AUDIT, DENY and ALLOW, as in Istio
				return []*listenerv3.Filter{pc.hcmInline(cluster, rc, append(hf, httpRBACFilters(as)...)...)}
			}
			return append(networkRBACFilters(cluster, tcpAuthz), tcpProxyFilter(cluster, cluster))
		}
		// A port with no declared protocol has an HTTP chain and a TCP
		// chain per transport: over mTLS the client's ALPN tells them
		// apart (a mesh client sending HTTP offers istio-http/*), in
		// plaintext the http_inspector's reading of the first bytes.
		auto := p.protocol == model.ProtocolAuto
		sniffed = sniffed || auto && mode != MTLSStrict
		if mode != MTLSDisable {
			if auto {
				l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
					Name: fmt.Sprintf("inbound_0.0.0.0_%d_mtls-http", p.port),
					FilterChainMatch: &listenerv3.FilterChainMatch{
						DestinationPort:      wrapperspb.UInt32(p.port),
						TransportProtocol:    "tls",
						ApplicationProtocols: mtlsHTTPALPN,
					},
					TransportSocket: tlsSocket(meshDownstreamTLS()),
					Filters:         filters(true),
				})
			}
			l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
				Name: fmt.Sprintf("inbound_0.0.0.0_%d_mtls", p.port),
				FilterChainMatch: &listenerv3.FilterChainMatch{
					DestinationPort:   wrapperspb.UInt32(p.port),
					TransportProtocol: "tls",
				},
				TransportSocket: tlsSocket(meshDownstreamTLS()),
				Filters:         filters(p.protocol.IsHTTP()),
			})
		}
		if mode != MTLSStrict {
			m := &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(p.port)}
			if mode == MTLSPermissive {
				m.TransportProtocol = "raw_buffer"
			}
			if auto {
				l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
					Name:             fmt.Sprintf("inbound_0.0.0.0_%d-http", p.port),
					FilterChainMatch: sniffedHTTPMatch(m),
					Filters:          filters(true),
				})
			}
			l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
				Name:             fmt.Sprintf("inbound_0.0.0.0_%d", p.port),
				FilterChainMatch: m,
				Filters:          filters(p.protocol.IsHTTP()),
			})
		}
	}
	if sniffed {
		pc.withDetection(l, tlsInspectorFilter())
	}
	// Ports no Service names: the workload's portLevelMtls ports get chains
	// of their own, every other port the catch-all, both under the mode
	// PeerAuthentication gives them, so STRICT refuses plaintext on every
	// captured port. Authorization applies here too (TCP-level: an ALLOW
	// rule needing HTTP attributes allows nobody).
	served := map[uint32]bool{}
	for _, p := range ports {
		served[p.port] = true
	}
	for _, port := range pc.portLevelPorts(w.namespace, w.labels) {
		if served[port] || port == OutboundCapturePort || port == InboundCapturePort {
			continue
		}
		l.FilterChains = append(l.FilterChains, passthroughChains(fmt.Sprintf("inbound_0.0.0.0_%d", port), port,
			pc.mtlsMode(w.namespace, w.labels, port), tcpAuthz)...)
	}
	l.FilterChains = append(l.FilterChains, passthroughChains("virtualInbound-catchall", 0,
		pc.mtlsMode(w.namespace, w.labels, 0), tcpAuthz)...)
	return l
}

// meshALPN are the protocols a mesh client offers when it originates mTLS;
// on a PERMISSIVE port they tell mesh mTLS from an application's own TLS.
var meshALPN = []string{"istio-peer-exchange", "istio"}

// passthroughChains forward to the original destination port (0: any port)
// under an mTLS mode: STRICT terminates mesh mTLS and has no chain for
// anything else, so plaintext is refused; PERMISSIVE terminates mesh mTLS
// (told by ALPN) and passes other TLS and plaintext through untouched;
// DISABLE passes everything through.
func passthroughChains(name string, port uint32, mode MTLSMode, as authzSet) []*listenerv3.FilterChain {
	match := func(transport string, alpn []string) *listenerv3.FilterChainMatch {
		m := &listenerv3.FilterChainMatch{TransportProtocol: transport, ApplicationProtocols: alpn}
		if port != 0 {
			m.DestinationPort = wrapperspb.UInt32(port)
		}
		return m
	}
	filters := func() []*listenerv3.Filter {
		return append(networkRBACFilters(InboundPassthroughCluster, as),
			tcpProxyFilter(InboundPassthroughCluster, InboundPassthroughCluster))
	}
	mtls := &listenerv3.FilterChain{Name: name + "_mtls", TransportSocket: tlsSocket(meshDownstreamTLS()), Filters: filters()}
	switch mode {
	case MTLSStrict:
		mtls.FilterChainMatch = match("tls", nil)
		return []*listenerv3.FilterChain{mtls}
	case MTLSDisable:
		return []*listenerv3.FilterChain{{Name: name + "-tcp", FilterChainMatch: match("", nil), Filters: filters()}}
	}
	mtls.FilterChainMatch = match("tls", meshALPN)
	return []*listenerv3.FilterChain{
		mtls,
		{Name: name + "-tls", FilterChainMatch: match("tls", nil), Filters: filters()},
		{Name: name + "-tcp", FilterChainMatch: match("raw_buffer", nil), Filters: filters()},
	}
}

// httpRBACFilters are the authorization filters of an inbound HTTP chain
// after CUSTOM's, in istiod's order: AUDIT (action LOG: marks what it
// matches for the access log, decides nothing), DENY, ALLOW.
func httpRBACFilters(as authzSet) []*hcmv3.HttpFilter {
	allow, deny := as.allow, as.deny
	var out []*hcmv3.HttpFilter
	if len(as.audit) > 0 {
		out = append(out, &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: mustAny(&rbachttp.RBAC{Rules: buildRBAC(as.audit, rbacv3.RBAC_LOG, true)}),
		}})
	}
	if len(deny) > 0 {
		out = append(out, &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: mustAny(&rbachttp.RBAC{Rules: buildRBAC(deny, rbacv3.RBAC_DENY, true)}),
		}})
	}
	if len(allow) > 0 {
		out = append(out, &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: mustAny(&rbachttp.RBAC{Rules: buildRBAC(allow, rbacv3.RBAC_ALLOW, true)}),
		}})
	}
	return out
}

// networkRBACFilters are the authorization filters of a TCP chain: AUDIT,
// DENY (with CUSTOM), ALLOW.
func networkRBACFilters(statPrefix string, as authzSet) []*listenerv3.Filter {
	allow, deny := as.allow, as.deny
	var out []*listenerv3.Filter
	if len(as.audit) > 0 {
		out = append(out, &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{
			TypedConfig: mustAny(&rbacnet.RBAC{StatPrefix: statPrefix, Rules: buildRBAC(as.audit, rbacv3.RBAC_LOG, false)}),
		}})
	}
	if len(deny) > 0 {
		out = append(out, &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{
			TypedConfig: mustAny(&rbacnet.RBAC{StatPrefix: statPrefix, Rules: buildRBAC(deny, rbacv3.RBAC_DENY, false)}),
		}})
	}
	if len(allow) > 0 {
		out = append(out, &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{
			TypedConfig: mustAny(&rbacnet.RBAC{StatPrefix: statPrefix, Rules: buildRBAC(allow, rbacv3.RBAC_ALLOW, false)}),
		}})
	}
	return out
}
