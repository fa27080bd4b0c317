package agent

import (
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// statOf reads one counter from the admin /stats page.
func statOf(t *testing.T, p *Proxy, name string) int {
	t.Helper()
	_, body := adminGet(t, p, "/stats")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("stat %s: %q", name, l)
			}
			return n
		}
	}
	t.Fatalf("stat %s not in /stats", name)
	return 0
}

// Requests between two sidecars over ISTIO_MUTUAL cost certificate work once:
// through a cluster that keeps connections, N requests share one connection
// and one handshake; through a cluster that opens a connection per request
// (max_requests_per_connection 1), every connection after the first resumes
// the TLS session, so the inbound listener counts N handshakes of which
// N-1 are resumed.
func TestMTLSBetweenSidecarsHandshakesOnce(t *testing.T) {
	app := startUpstream(t, "app", nil)
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "default", "sleep")
	cp := startControlPlane(t, "")
	inPort, keepPort, newPort := freePort(t), freePort(t), freePort(t)

	inHCM := &hcmv3.HttpConnectionManager{StatPrefix: "inbound", RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
		Name: "inbound", VirtualHosts: []*routev3.VirtualHost{{Name: "in", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("app")}}}}}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}}}
	downstreamTLS := &tlsv3.DownstreamTlsContext{CommonTlsContext: commonTLS(), RequireClientCertificate: wrapperspb.Bool(true)}
	inbound := &listenerv3.Listener{Name: "virtualInbound", Address: sockAddr("127.0.0.1", inPort), TrafficDirection: corev3.TrafficDirection_INBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, downstreamTLS)}},
			Filters:         []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, inHCM)}}}}}}
	mtlsCluster := func(name string, perConn uint32) *clusterv3.Cluster {
		c := staticCluster(name, &upstream{addr: "127.0.0.1:" + itoa(inPort)})
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t,
			&tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(spiffeMatch("spiffe://cluster.local/ns/default/sa/sleep")), Sni: "outbound_.80_._." + name + ".default.svc.cluster.local"})}}
		if perConn > 0 {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t, &httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(perConn)},
				UpstreamProtocolOptions:   &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{}}},
			})}
		}
		return c
	}
	route := func(name, cluster string) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: "o", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo(cluster)}}}}}
	}
	cp.set(map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {inbound, httpListener(t, "keep", keepPort, "keep"), httpListener(t, "new", newPort, "new")},
		resourcev3.ClusterType:  {staticCluster("app", app), mtlsCluster("keep", 0), mtlsCluster("percall", 1)},
		resourcev3.RouteType:    {route("keep", "keep"), route("new", "percall")},
		resourcev3.SecretType: {
			&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}}}}},
			&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: ca.pem}}}}},
		},
	})
	p := startProxy(t, cp.addr)
	eventually(t, "both mTLS paths", func() bool {
		for _, port := range []uint32{keepPort, newPort} {
			resp, err := client.Get(url(port, "/"))
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return false
			}
		}
		return true
	})
	handshakes := "listener.127.0.0.1:" + itoa(inPort) + ".ssl.handshake"
	reused := "listener.127.0.0.1:" + itoa(inPort) + ".ssl.session_reused"
	const n = 20
	run := func(port uint32) (full, resumed int) {
		h0, r0 := statOf(t, p, handshakes), statOf(t, p, reused)
		for i := 0; i < n; i++ {
			if resp, body := get(t, url(port, "/")); resp.StatusCode != 200 {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		h, r := statOf(t, p, handshakes)-h0, statOf(t, p, reused)-r0
		return h - r, r
	}
	if full, resumed := run(keepPort); full+resumed != 0 {
		t.Errorf("%d requests over a kept connection made %d full and %d resumed handshakes; want none", n, full, resumed)
	}
	if full, resumed := run(newPort); full != 0 || resumed != n {
		t.Errorf("%d requests with a new connection each: %d full and %d resumed handshakes; want 0 full (the warm-up made it) and %d resumed", n, full, resumed, n)
	}
}
