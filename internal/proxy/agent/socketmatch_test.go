package agent

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// startMTLSUpstream serves HTTPS that requires a client certificate from ca and
// answers with the caller's SPIFFE ID. Like mesh-proxy's inbound listeners it
// offers only h2 and http/1.1 in ALPN.
func startMTLSUpstream(t *testing.T, ca *testCA, name string) *upstream {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, "default", name)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{name: name, addr: ln.Addr().String()}
	u.srv = &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, NextProtos: []string{"h2", "http/1.1"}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Upstream", name)
			if len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) > 0 {
				w.Header().Set("X-Peer", r.TLS.PeerCertificates[0].URIs[0].String())
			}
			io.WriteString(w, name)
		}),
	}
	go u.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { u.srv.Close() })
	return u
}

// istioAutoMTLSCluster is the shape mesh-pilot (like istiod) sends for a
// service without a DestinationRule: mesh mTLS to endpoints labelled
// tlsMode=istio, plaintext to the rest.
func istioAutoMTLSCluster(t *testing.T, name string) *clusterv3.Cluster {
	c := edsCluster(name)
	mtls := &tlsv3.UpstreamTlsContext{Sni: "outbound_.9080_._." + name, CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds("ROOTCA")},
		AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
	}}
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, mtls)}}},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &rawbufferv3.RawBuffer{})}}},
	}
	return c
}

func istioMeta() *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
	}}
}

func meshSecrets(t *testing.T, ca *testCA, ns, sa string) []types.Resource {
	certPEM, keyPEM := ca.issue(t, ns, sa)
	return []types.Resource{
		&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}}}}},
		&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: ca.pem}}}}},
	}
}

// TestTransportSocketMatches sends one cluster two endpoints: one labelled
// tlsMode=istio behind an mTLS-only server, one unlabelled behind a plaintext
// server. Each must be reached over its own transport socket.
func TestTransportSocketMatches(t *testing.T) {
	ca := newCA(t)
	secure := startMTLSUpstream(t, ca, "with-sidecar")
	plain := startUpstream(t, "without-sidecar", nil)
	cp := startControlPlane(t, "")
	port := freePort(t)

	const name = "reviews.default.svc.cluster.local"
	load := &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
		{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.0.1", secure.port())}}, Metadata: istioMeta()},
		{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.0.1", plain.port())}}},
	}}}}
	ver := cp.set(map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {httpListener(t, "out", port, "r")},
		resourcev3.RouteType: {&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
			Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo(name)}}}}}},
		resourcev3.ClusterType:  {istioAutoMTLSCluster(t, name)},
		resourcev3.EndpointType: {load},
		resourcev3.SecretType:   meshSecrets(t, ca, "default", "productpage"),
	})
	startProxy(t, cp.addr)
	eventually(t, "ACK of every type", func() bool {
		for _, typ := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType} {
			if cp.ackedVersion(typ) != ver {
				return false
			}
		}
		return true
	})
	if n := cp.nackMessages(); len(n) > 0 {
		t.Fatalf("proxy NACKed: %q", n)
	}
	eventually(t, "listener serving", func() bool {
		resp, err := client.Get(url(port, "/"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusNotFound // the route is in place
	})

	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		resp, body := get(t, url(port, "/"))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d %q; want 200 from either endpoint", i, resp.StatusCode, body)
		}
		seen[body]++
		if body == "with-sidecar" {
			if got, want := resp.Header.Get("X-Peer"), "spiffe://cluster.local/ns/default/sa/productpage"; got != want {
				t.Errorf("mTLS endpoint saw client identity %q, want %q", got, want)
			}
		}
	}
	if seen["with-sidecar"] == 0 || seen["without-sidecar"] == 0 {
		t.Errorf("responses by endpoint %v; want both endpoints to answer", seen)
	}
}

// TestMeshTCPOverMTLSBetweenProxies sends TCP from an outbound listener over
// pilot's mesh mTLS context (ALPN istio-peer-exchange, istio) to an inbound
// listener with pilot's server context (ALPN h2, http/1.1), as between two
// sidecars for a TCP service: the handshake must succeed although the ALPN
// lists share nothing, as it does between two Envoys.
func TestMeshTCPOverMTLSBetweenProxies(t *testing.T) {
	ca := newCA(t)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	cp := startControlPlane(t, "")
	inPort, outPort := freePort(t), freePort(t)
	tcpTo := func(name string, port uint32, cluster string, ts *corev3.TransportSocket) *listenerv3.Listener {
		tp := &tcpv3.TcpProxy{StatPrefix: name, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}}
		return &listenerv3.Listener{Name: name, Address: sockAddr("127.0.0.1", port), FilterChains: []*listenerv3.FilterChain{{TransportSocket: ts,
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tp)}}}}}}
	}
	server := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds("ROOTCA")},
		AlpnProtocols:                  []string{"h2", "http/1.1"},
	}}
	inbound := tcpTo("inbound", inPort, "echo", &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, server)}})
	toInbound := istioAutoMTLSCluster(t, "mysql.default.svc.cluster.local")
	toInbound.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	toInbound.EdsClusterConfig = nil
	toInbound.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: toInbound.Name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
		{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.0.1", inPort)}}, Metadata: istioMeta()}}}}}
	ver := cp.set(map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {inbound, tcpTo("outbound", outPort, toInbound.Name, nil)},
		resourcev3.ClusterType:  {staticCluster("echo", &upstream{addr: echo.Addr().String()}), toInbound},
		resourcev3.SecretType:   meshSecrets(t, ca, "default", "ratings"),
	})
	startProxy(t, cp.addr)
	eventually(t, "LDS ACK", func() bool { return cp.ackedVersion(resourcev3.ListenerType) == ver })

	var c net.Conn
	eventually(t, "outbound listener bound", func() bool {
		c, err = net.Dial("tcp", "127.0.0.1:"+itoa(outPort))
		return err == nil
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	payload := "SELECT rating FROM ratings"
	go c.Write([]byte(payload))
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != payload {
		t.Fatalf("echo over proxy-to-proxy mTLS: %q, %v", got, err)
	}
}
