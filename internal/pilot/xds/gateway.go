package xds

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"mesh.dev/mesh/internal/hostmatch"
)

// gatewayServer is one Gateway server, with the gateway it came from.
type gatewayServer struct {
	gw     *networkingv1.Gateway
	server *networkingapi.Server
}

// gateway builds a router's config: a bound listener per Gateway server
// port and a route table per port from the VirtualServices bound to the
// Gateways; clusters for every service the gateway can see.
func (pc *PushContext) gateway(r *Resources, w *workload) {
	var servers []gatewayServer
	gwNames := map[string]bool{}
	for _, gw := range pc.Snap.Gateways {
		if len(gw.Spec.Selector) == 0 || !labels.SelectorFromSet(gw.Spec.Selector).Matches(labels.Set(w.labels)) {
			continue
		}
		gwNames[gw.Namespace+"/"+gw.Name] = true
		for _, s := range gw.Spec.Servers {
			if s.Port != nil {
				servers = append(servers, gatewayServer{gw, s})
			}
		}
	}
	// A server listens on the container port its Service sends the server
	// port to, as Istio does: a Gateway says 443 and the Service maps 443
	// to 8443, so the gateway binds 8443.
	bind := gatewayBindPorts(w)
	byPort := map[uint32][]gatewayServer{}
	for _, s := range servers {
		p := s.server.Port.Number
		if t, ok := bind[p]; ok {
			p = t
		}
		byPort[p] = append(byPort[p], s)
	}
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	// AuthorizationPolicies and RequestAuthentications selecting the
	// gateway's pods (by labels, or targetRefs to its Gateway) hold on every
	// HTTP server it runs, as on a sidecar's inbound side.
	var authz []*hcmv3.HttpFilter
	if jf := jwtFilter(pc.requestAuthns(w.namespace, w.labels)); jf != nil {
		authz = append(authz, jf)
	}
	allow, deny := pc.authzPolicies(w.namespace, w.labels)
	authz = append(authz, httpRBACFilters(allow, deny)...)
	for _, port := range ports {
		l, rc := pc.gatewayPort(port, byPort[port], w.namespace, authz)
		if l == nil {
			continue
		}
		r.add(resourcev3.ListenerType, newItem(l.Name, l))
		if rc != nil {
			r.add(resourcev3.RouteType, newItem(rc.Name, rc))
		}
	}
	r.add(resourcev3.ClusterType, fixedClusterItems()...)
	sc := pc.scopeFor(w.namespace, nil)
	for _, svc := range sc.services {
		r.add(resourcev3.ClusterType, pc.outboundClusters(svc, w.namespace)...)
		if eps := pc.outboundEndpoints(svc, w.namespace); len(eps) > 0 {
			r.add(resourcev3.EndpointType, eps...)
			r.EndpointHosts[svc.Hostname] = true
			r.edsServices = append(r.edsServices, svc)
		}
	}
}

// gatewayBindPorts maps the service ports of the Services selecting a
// gateway workload to the container ports they target. A Gateway server
// port that no Service exposes is bound as it is (analyze reports it,
// IST0162).
func gatewayBindPorts(w *workload) map[uint32]uint32 {
	out := map[uint32]uint32{}
	for _, svc := range w.services {
		for _, p := range svc.Ports {
			if _, ok := out[p.Port]; ok {
				continue
			}
			tp := p.TargetPort
			if tp == 0 {
				if n, ok := w.namedPorts[p.Name]; ok {
					tp = n
				} else {
					tp = p.Port
				}
			}
			out[p.Port] = tp
		}
	}
	return out
}

// gatewayPort builds one bound port of a router in namespace ns (which
// VirtualServices and DestinationRules it sees, by their exportTo); authz
// are the HTTP filters that authenticate and authorize its requests, ahead
// of the others.
func (pc *PushContext) gatewayPort(port uint32, servers []gatewayServer, ns string, authz []*hcmv3.HttpFilter) (*listenerv3.Listener, *routev3.RouteConfiguration) {
	name := ListenerName("0.0.0.0", port)
	routeName := fmt.Sprintf("http.%d", port)
	l := &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress("0.0.0.0", port),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
	var httpServers []gatewayServer
	for i, s := range servers {
		proto := strings.ToUpper(s.server.Port.Protocol)
		tls := s.server.Tls
		switch {
		case proto == "HTTP" || proto == "HTTP2" || proto == "GRPC":
			httpServers = append(httpServers, s)
		case (proto == "HTTPS" || proto == "TLS") && tls != nil &&
			(tls.Mode == networkingapi.ServerTLSSettings_SIMPLE || tls.Mode == networkingapi.ServerTLSSettings_MUTUAL || tls.Mode == networkingapi.ServerTLSSettings_ISTIO_MUTUAL):
			httpServers = append(httpServers, s)
			fc := &listenerv3.FilterChain{
				Name:             fmt.Sprintf("https.%d.%d.%s.%s", port, i, s.gw.Name, s.gw.Namespace),
				FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: sniNames(s.server.Hosts)},
				TransportSocket:  tlsSocket(gatewayTLS(tls)),
				Filters:          []*listenerv3.Filter{pc.hcmRDS(routeName, routeName, append(authz[:len(authz):len(authz)], faultFilter())...)},
			}
			l.FilterChains = append(l.FilterChains, fc)
		}
	}
	if len(httpServers) == 0 {
		return nil, nil
	}
	if len(l.FilterChains) > 0 {
		l.ListenerFilters = []*listenerv3.ListenerFilter{{
			Name:       "envoy.filters.listener.tls_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspector.TlsInspector{})},
		}}
	}
	for _, s := range httpServers {
		if s.server.Tls == nil {
			l.DefaultFilterChain = &listenerv3.FilterChain{Name: name, Filters: []*listenerv3.Filter{pc.hcmRDS(routeName, routeName, append(authz[:len(authz):len(authz)], faultFilter())...)}}
			break
		}
	}
	rc := &routev3.RouteConfiguration{Name: routeName, ValidateClusters: wrapperspb.Bool(false)}
	vhosts := map[string]*routev3.VirtualHost{}
	for _, vs := range pc.vsSorted {
		if !hostmatch.Exported(vs.Spec.ExportTo, vs.Namespace, ns) {
			continue
		}
		for _, s := range httpServers {
			gwKey := s.gw.Namespace + "/" + s.gw.Name
			if !gatewayListed(vs.Spec.Gateways, gwKey, vs.Namespace) {
				continue
			}
			for _, h := range vs.Spec.Hosts {
				if !serverHostsAllow(s.server.Hosts, h, vs.Namespace) {
					continue
				}
				vh := vhosts[h]
				if vh == nil {
					vh = &routev3.VirtualHost{Name: fmt.Sprintf("%s:%d", h, s.server.Port.Number), Domains: []string{h}}
					vhosts[h] = vh
				}
				// Clients name the port they dialled (the Service's), not the
				// container port the gateway binds.
				if h != "*" {
					for _, d := range []string{fmt.Sprintf("%s:%d", h, s.server.Port.Number), fmt.Sprintf("%s:%d", h, port)} {
						if !slices.Contains(vh.Domains, d) {
							vh.Domains = append(vh.Domains, d)
						}
					}
				}
				if s.server.Tls != nil && s.server.Tls.HttpsRedirect {
					vh.RequireTls = routev3.VirtualHost_ALL
				}
				vh.Routes = append(vh.Routes, pc.httpRoutes(vs, routeCtx{gateway: gwKey, configNS: ns})...)
			}
		}
	}
	for _, h := range sortedKeys(vhosts) {
		if len(vhosts[h].Routes) > 0 {
			rc.VirtualHosts = append(rc.VirtualHosts, vhosts[h])
		}
	}
	return l, rc
}

// serverHostsAllow reports whether a Gateway server's hosts
// ("ns/host" or "host", wildcards allowed) admit a VirtualService host.
func serverHostsAllow(serverHosts []string, vsHost, vsNS string) bool {
	for _, sh := range serverHosts {
		ns, host, ok := strings.Cut(sh, "/")
		if !ok {
			host, ns = sh, "*"
		}
		if ns != "*" && ns != "." && ns != vsNS {
			continue
		}
		if hostMatches(host, vsHost) || hostMatches(vsHost, host) {
			return true
		}
	}
	return false
}

func sniNames(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if _, host, ok := strings.Cut(h, "/"); ok {
			h = host
		}
		if h != "*" {
			out = append(out, h)
		}
	}
	return out
}

func gatewayTLS(t *networkingapi.ServerTLSSettings) *tlsv3.DownstreamTlsContext {
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{AlpnProtocols: []string{"h2", "http/1.1"}}}
	switch {
	case t.Mode == networkingapi.ServerTLSSettings_ISTIO_MUTUAL:
		return meshDownstreamTLS()
	case t.CredentialName != "":
		ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef("kubernetes://" + t.CredentialName)}
		if t.Mode == networkingapi.ServerTLSSettings_MUTUAL {
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsRef("kubernetes://" + t.CredentialName + "-cacert"),
			}
		}
	default:
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: fileSource(t.ServerCertificate),
			PrivateKey:       fileSource(t.PrivateKey),
		}}
		if t.Mode == networkingapi.ServerTLSSettings_MUTUAL && t.CaCertificates != "" {
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: fileSource(t.CaCertificates)},
			}
		}
	}
	if t.Mode == networkingapi.ServerTLSSettings_MUTUAL {
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
	}
	return ctx
}
