package xds

import (
	"fmt"
	"net/netip"
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

	"mesh.dev/mesh/internal/credential"
	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/hostmatch"
	"mesh.dev/mesh/internal/pilot/model"
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
		if gw.Annotations[gatewayapi.AnnotationSameNamespace] != "" && gw.Namespace != w.namespace {
			continue // a Gateway API Gateway is served by its own namespace's deployment
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
	// A server with bind listens on that address only, its own listener.
	bind := gatewayBindPorts(w)
	byAddr := map[bindAddr][]gatewayServer{}
	for _, s := range servers {
		a := bindAddr{ip: "0.0.0.0", port: s.server.Port.Number}
		if t, ok := bind[a.port]; ok {
			a.port = t
		}
		if s.server.Bind != "" {
			if _, err := netip.ParseAddr(s.server.Bind); err != nil {
				continue // unix sockets are not served; validation and analyze report it
			}
			a.ip = s.server.Bind
		}
		byAddr[a] = append(byAddr[a], s)
	}
	addrs := make([]bindAddr, 0, len(byAddr))
	for a := range byAddr {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool {
		if addrs[i].port != addrs[j].port {
			return addrs[i].port < addrs[j].port
		}
		return addrs[i].ip < addrs[j].ip
	})
	// AuthorizationPolicies and RequestAuthentications selecting the
	// gateway's pods (by labels, or targetRefs to its Gateway) hold on every
	// HTTP server it runs, as on a sidecar's inbound side.
	var authz []*hcmv3.HttpFilter
	if jf := pc.jwtFilter(pc.requestAuthns(w.namespace, w.labels), pc.scopeFor(w.namespace, nil)); jf != nil {
		authz = append(authz, jf)
	}
	as := pc.authzPolicies(w.namespace, w.labels)
	authz = append(authz, pc.customFilters(as.custom)...)
	authz = append(authz, httpRBACFilters(as)...)
	// On TCP, TLS and passthrough servers the same policies hold at the
	// connection level; CUSTOM, having no check there, denies what it
	// selects, as on a sidecar's TCP ports.
	tcpAs := as
	tcpAs.deny = append(as.deny[:len(as.deny):len(as.deny)], as.custom...)
	tcpAuthz := gatewayTCPAuthz{as: tcpAs}
	for _, a := range addrs {
		l, rc := pc.gatewayPort(r, a, byAddr[a], w.namespace, authz, tcpAuthz)
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
		svc = routerView(svc)
		r.add(resourcev3.ClusterType, pc.routerClusters(svc, w.namespace)...)
		pc.clientCredentials(r, svc, w.namespace)
		if slices.ContainsFunc(servers, func(s gatewayServer) bool {
			return s.server.GetTls().GetMode() == networkingapi.ServerTLSSettings_AUTO_PASSTHROUGH &&
				serverHostsAllow(s.server.Hosts, svc.Hostname, svc.Namespace)
		}) {
			r.add(resourcev3.ClusterType, sniDNATClusters(pc.routerClusters(svc, w.namespace))...)
		}
		if eps := pc.outboundEndpoints(svc, w.namespace); len(eps) > 0 {
			r.add(resourcev3.EndpointType, eps...)
			r.EndpointHosts[svc.Hostname] = true
			r.edsServices = append(r.edsServices, svc)
		}
	}
}

// routerView is how a gateway sees svc: a headless Kubernetes Service's
// endpoints are sent to it (EDS) rather than left to the original
// destination, as istiod does for gateways: a request reaches a gateway
// addressed to the gateway, so there is no original destination of the
// backend's to use.
func routerView(svc *model.Service) *model.Service {
	if svc.Resolution != model.ResolutionPassthrough || svc.MeshExternal || svc.Hostname != model.KubeHostname(svc.Name, svc.Namespace) {
		return svc
	}
	v := *svc
	v.Resolution = model.ResolutionEndpoints
	return &v
}

// bindAddr is where a router listens for a set of Gateway servers.
type bindAddr struct {
	ip   string
	port uint32
}

// routeName is the route table of one bound address: http.PORT as Istio
// names it, with the address appended for servers that set bind.
func (a bindAddr) routeName() string {
	if a.ip == "0.0.0.0" {
		return fmt.Sprintf("http.%d", a.port)
	}
	return fmt.Sprintf("http.%d.%s", a.port, a.ip)
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
func (pc *PushContext) gatewayPort(r *Resources, a bindAddr, servers []gatewayServer, ns string, authz []*hcmv3.HttpFilter, tcpAuthz gatewayTCPAuthz) (*listenerv3.Listener, *routev3.RouteConfiguration) {
	port := a.port
	name := ListenerName(a.ip, port)
	routeName := a.routeName()
	l := &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(a.ip, port),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
	var httpServers []gatewayServer
	claims := sniClaims{}
	var tcpDefault *listenerv3.Filter
	for i, s := range servers {
		proto := strings.ToUpper(s.server.Port.Protocol)
		tls := s.server.Tls
		switch {
		case proto == "HTTP" || proto == "HTTP2" || proto == "GRPC":
			httpServers = append(httpServers, s)
		case (proto == "HTTPS" || proto == "TLS") && tls != nil && tls.Mode == networkingapi.ServerTLSSettings_PASSTHROUGH:
			l.FilterChains = append(l.FilterChains, tcpAuthz.guard(pc.gatewayPassthroughChains(s, ns, claims))...)
		case (proto == "HTTPS" || proto == "TLS") && tls != nil && tls.Mode == networkingapi.ServerTLSSettings_AUTO_PASSTHROUGH:
			l.FilterChains = append(l.FilterChains, tcpAuthz.guard(pc.autoPassthroughChains(s, ns, pc.scopeFor(ns, nil).services, claims))...)
		case (proto == "HTTPS" || proto == "TLS") && tls != nil && terminates(tls.Mode):
			// An HTTPS server ends TLS and routes HTTP; a TLS server ends
			// TLS and proxies the bytes by the VirtualServices' tcp routes,
			// as istiod does.
			var filters []*listenerv3.Filter
			if proto == "TLS" {
				f := pc.gatewayTCPFilter(s, ns)
				if f == nil {
					continue // no tcp route: nothing to send the connection to
				}
				filters = tcpAuthz.filters(f)
			}
			names, ok := claims.take(sniNames(s.server.Hosts))
			if !ok {
				continue // another server of the port has its hosts
			}
			if tls.CredentialName != "" {
				// A server whose Secret is missing or unusable is not
				// served (fails closed) while the port's other servers
				// are; status and analyze say why (credential.Lookup).
				c, err := pc.Snap.GatewayServerCredential(s.gw, ns, tls)
				if err != nil {
					continue
				}
				r.addCredential(c, false)
			}
			if filters == nil {
				httpServers = append(httpServers, s)
				filters = []*listenerv3.Filter{pc.hcmRDS(routeName, routeName, append(authz[:len(authz):len(authz)], faultFilter())...)}
			}
			dtc := gatewayTLS(tls)
			if proto == "TLS" && tls.Mode != networkingapi.ServerTLSSettings_ISTIO_MUTUAL {
				dtc.CommonTlsContext.AlpnProtocols = nil // not HTTP: no h2 to offer
			}
			fc := &listenerv3.FilterChain{
				Name:             fmt.Sprintf("https.%d.%d.%s.%s", port, i, s.gw.Name, s.gw.Namespace),
				FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names},
				TransportSocket:  tlsSocket(dtc),
				Filters:          filters,
			}
			l.FilterChains = append(l.FilterChains, fc)
		case isTCPProtocol(proto) && tls == nil:
			// Plain TCP: one chain for the port, the first server's
			// route, unless the port serves plaintext HTTP.
			if tcpDefault == nil {
				tcpDefault = pc.gatewayTCPFilter(s, ns)
			}
		}
	}
	if len(httpServers) == 0 && len(l.FilterChains) == 0 && tcpDefault == nil {
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
	if l.DefaultFilterChain == nil && tcpDefault != nil {
		l.DefaultFilterChain = &listenerv3.FilterChain{Name: name, Filters: tcpAuthz.filters(tcpDefault)}
	}
	if len(httpServers) == 0 {
		return l, nil
	}
	rc := &routev3.RouteConfiguration{Name: routeName, ValidateClusters: wrapperspb.Bool(false)}
	vhosts := map[string]*routev3.VirtualHost{}
	for _, vs := range pc.vsSorted {
		if !hostmatch.Exported(pc.Snap.VirtualServiceExportTo(vs), vs.Namespace, ns) {
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

// terminates reports whether a server TLS mode has the gateway end TLS.
func terminates(m networkingapi.ServerTLSSettings_TLSmode) bool {
	switch m {
	case networkingapi.ServerTLSSettings_SIMPLE, networkingapi.ServerTLSSettings_MUTUAL,
		networkingapi.ServerTLSSettings_OPTIONAL_MUTUAL, networkingapi.ServerTLSSettings_ISTIO_MUTUAL:
		return true
	}
	return false
}

// verifiesClients reports whether a server TLS mode checks client
// certificates against a CA: MUTUAL requires one, OPTIONAL_MUTUAL checks
// one when the client presents it.
func verifiesClients(m networkingapi.ServerTLSSettings_TLSmode) bool {
	return m == networkingapi.ServerTLSSettings_MUTUAL || m == networkingapi.ServerTLSSettings_OPTIONAL_MUTUAL
}

// addCredential records a Secret the router's listeners name over SDS;
// Generate hands it only to routers on mTLS-authenticated streams.
func (r *Resources) addCredential(c *credential.Credential, emptyCA bool) {
	cert := credential.SDSName(c.Name)
	if !slices.ContainsFunc(r.credentials, func(it *item) bool { return it.name == cert }) {
		r.credentials = append(r.credentials, newItem(cert, &tlsv3.Secret{Name: cert, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inlineBytes(c.Cert), PrivateKey: inlineBytes(c.Key),
		}}}))
	}
	if c.CA == nil && !emptyCA {
		return
	}
	ca := cert + credential.CASuffix
	if !slices.ContainsFunc(r.credentials, func(it *item) bool { return it.name == ca }) {
		vc := &tlsv3.CertificateValidationContext{}
		if c.CA != nil {
			vc.TrustedCa = inlineBytes(c.CA)
		}
		r.credentials = append(r.credentials, newItem(ca, &tlsv3.Secret{Name: ca, Type: &tlsv3.Secret_ValidationContext{ValidationContext: vc}}))
	}
}

// clientCredentials adds the Secrets the DestinationRule of svc names for
// TLS origination (tls.credentialName, at every level of its policy) for a
// gateway in ns: the client certificate as kubernetes://NAME and the CA as
// NAME-cacert, empty when the Secret has none (the server is then not
// checked, as without caCertificates). A Secret that is missing or
// unusable is not served, so the cluster's handshakes fail (closed).
func (pc *PushContext) clientCredentials(r *Resources, svc *model.Service, ns string) {
	dr := pc.destinationRule(ns, svc)
	if dr == nil {
		return
	}
	var names []string
	add := func(tp *networkingapi.TrafficPolicy) {
		if n := tp.GetTls().GetCredentialName(); n != "" {
			names = append(names, n)
		}
		for _, pl := range tp.GetPortLevelSettings() {
			if n := pl.GetTls().GetCredentialName(); n != "" {
				names = append(names, n)
			}
		}
	}
	add(dr.Spec.TrafficPolicy)
	for _, ss := range dr.Spec.Subsets {
		add(ss.TrafficPolicy)
	}
	for _, n := range names {
		c, err := pc.Snap.GatewayClientCredential(ns, n)
		if err != nil {
			continue
		}
		r.addCredential(c, true)
	}
}

func inlineBytes(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func gatewayTLS(t *networkingapi.ServerTLSSettings) *tlsv3.DownstreamTlsContext {
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{AlpnProtocols: []string{"h2", "http/1.1"}}}
	switch {
	case t.Mode == networkingapi.ServerTLSSettings_ISTIO_MUTUAL:
		return meshDownstreamTLS()
	case t.CredentialName != "":
		name := credential.SDSName(t.CredentialName)
		ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef(name)}
		if verifiesClients(t.Mode) {
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsRef(name + credential.CASuffix),
			}
		}
	default:
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: fileSource(t.ServerCertificate),
			PrivateKey:       fileSource(t.PrivateKey),
		}}
		if verifiesClients(t.Mode) && t.CaCertificates != "" {
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
