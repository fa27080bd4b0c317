package identity_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/freeport"
	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/proxy/agent"
	"mesh.dev/mesh/internal/proxy/identity"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

const pilotName = "mesh-pilot.mesh-system.svc"

// pilotCA is pilot's certificate service on loopback as pilot runs it on
// 15012: TLS with a serving certificate from the mesh CA, client
// certificates optional for the CSR service and required for xDS, tokens
// checked by the sandbox API server.
type pilotCA struct {
	addr     string
	ca       *ca.Authority
	rootFile string
	kube     kubernetes.Interface
	xds      cachev3.SnapshotCache
}

func startPilotCA(t *testing.T, maxTTL time.Duration) *pilotCA {
	t.Helper()
	c := sandboxtest.Cluster(t)
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	a, err := ca.NewSelfSigned("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := a.ServingCertificate([]string{pilotName}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serving}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: a.RootPool()})),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if strings.HasPrefix(info.FullMethod, "/envoy.service.") {
				p, _ := peer.FromContext(ss.Context())
				if ti, ok := p.AuthInfo.(credentials.TLSInfo); !ok || len(ti.State.VerifiedChains) == 0 {
					return status.Error(codes.Unauthenticated, "xDS needs a client certificate from the mesh CA")
				}
			}
			return h(srv, ss)
		}))
	(&ca.Service{CA: a, Kube: kube, MaxTTL: maxTTL, Log: slog.New(slog.DiscardHandler)}).Register(g)
	snaps := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(context.Background(), snaps, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	root := filepath.Join(t.TempDir(), "root-cert.pem")
	if err := os.WriteFile(root, a.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &pilotCA{addr: ln.Addr().String(), ca: a, rootFile: root, kube: kube, xds: snaps}
}

// token creates a service account and writes a token for it where a projected token would be.
func (p *pilotCA) token(t *testing.T, ns, sa string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := p.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := p.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "istio-token")
	if err := os.WriteFile(f, []byte(tr.Status.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (p *pilotCA) manager(t *testing.T, tokenFile string, ttl time.Duration) *identity.Manager {
	t.Helper()
	// The address is an IP; the serving certificate names pilot's Service, as in a cluster.
	m, err := identity.New(identity.Config{CAAddress: p.addr, ServerName: pilotName, RootCertFile: p.rootFile, TokenFile: tokenFile, TTL: ttl,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestWorkloadCertificateFromPilotCA(t *testing.T) {
	p := startPilotCA(t, time.Hour)
	tok := p.token(t, "team-a", "frontend")
	m := p.manager(t, tok, 10*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := m.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.SPIFFE != "spiffe://cluster.local/ns/team-a/sa/frontend" {
		t.Errorf("identity %q, want the token's service account", c.SPIFFE)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: p.ca.RootPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify against pilot's root: %v", err)
	}
	if life := time.Until(c.Leaf.NotAfter); life > 11*time.Minute || life < 5*time.Minute {
		t.Errorf("certificate lives %v, asked for 10m", life)
	}
	if m.Secret(identity.WorkloadSecret).GetTlsCertificate() == nil || m.Secret(identity.RootSecret).GetValidationContext() == nil || m.Secret("other") != nil {
		t.Error("the certificate is not offered as the default and ROOTCA secrets (and nothing else)")
	}

	// A token the API server does not know gets nothing, and the error says why.
	bad := filepath.Join(t.TempDir(), "token")
	os.WriteFile(bad, []byte("not-a-token"), 0o600)
	if _, err := p.manager(t, bad, time.Hour).Fetch(ctx); status.Code(errorsCause(err)) != codes.Unauthenticated {
		t.Errorf("forged token: %v, want Unauthenticated", err)
	}
	// A root that did not sign pilot's serving certificate refuses to talk to it.
	other, _ := ca.NewSelfSigned("other", time.Hour)
	otherRoot := filepath.Join(t.TempDir(), "root.pem")
	os.WriteFile(otherRoot, other.RootPEM(), 0o600)
	m2, err := identity.New(identity.Config{CAAddress: p.addr, ServerName: pilotName, RootCertFile: otherRoot, TokenFile: tok, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if _, err := m2.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("CA with a serving certificate from another root: %v, want a certificate error", err)
	}
}

// errorsCause unwraps to the gRPC status error.
func errorsCause(err error) error {
	for err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
	return nil
}

// The CA caps certificates at a few seconds here, so renewal at half-life
// happens within the test: every new certificate must arrive while the one
// before it is still valid, and each comes with a fresh key.
func TestRotationBeforeExpiry(t *testing.T) {
	p := startPilotCA(t, 4*time.Second)
	m := p.manager(t, p.token(t, "team-r", "worker"), time.Hour)
	got := make(chan *identity.Cert, 8)
	m.OnRotate(func(c *identity.Cert) { got <- c })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	var prev *identity.Cert
	for i := 0; i < 3; i++ {
		select {
		case c := <-got:
			if prev != nil {
				if !c.Received.Before(prev.Leaf.NotAfter) {
					t.Fatalf("certificate %d arrived at %v, after the previous one expired at %v", i, c.Received, prev.Leaf.NotAfter)
				}
				if c.TLS.PrivateKey.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(prev.TLS.PrivateKey.(crypto.Signer).Public()) {
					t.Fatalf("certificate %d reuses the previous key", i)
				}
			}
			if m.Current() != c {
				t.Fatalf("certificate %d was announced but is not the current one", i)
			}
			prev = c
		case <-time.After(20 * time.Second):
			t.Fatalf("no certificate %d", i)
		}
	}
}

// The agent gets its certificate from pilot's CA, uses it as the client
// certificate of its xDS connection on the mTLS port (pilot serves xDS
// there only with one), and serves its STRICT inbound listener with it
// although pilot sends no "default"/"ROOTCA" secrets.
func TestProxyUsesTheCertificateForXDSAndMTLS(t *testing.T) {
	p := startPilotCA(t, time.Hour)
	tok := p.token(t, "team-p", "reviews")
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from app") })}
	appLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go app.Serve(appLn)
	defer app.Close()
	appPort := uint32(appLn.Addr().(*net.TCPAddr).Port)
	port := freePort(t)

	node := "sidecar~127.0.0.1~reviews-1.team-p~team-p.svc.cluster.local"
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  {staticCluster("app", appPort)},
		resourcev3.ListenerType: {strictListener(t, port, "app")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.xds.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
	px, err := agent.New(agent.Options{XDSAddress: p.addr, NodeID: node, Identity: p.manager(t, tok, time.Hour), XDSMTLS: true,
		XDSBackoff: [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := px.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer px.Close()

	pair, _, _, err := p.ca.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) {
		return p.ca.SignWorkload(pub, ca.SPIFFEID("team-q", "productpage"), time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	var serverID string
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: p.ca.RootPool(), InsecureSkipVerify: true, // mesh peers are checked by SPIFFE ID below, not host name
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.ca.RootPool(), Intermediates: inter}); err != nil {
				return err
			}
			serverID = leaf.URIs[0].String()
			return nil
		}}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "from app" {
				t.Fatalf("through the STRICT listener: %d %q", resp.StatusCode, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the STRICT listener never served mTLS (no xDS over mTLS, or no certificate): %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if serverID != "spiffe://cluster.local/ns/team-p/sa/reviews" {
		t.Errorf("the listener presented %q, want the workload's own identity from pilot's CA", serverID)
	}
}

// freePort is a port on 127.0.0.1 for a server the test starts later.
func freePort(t *testing.T) uint32 {
	return uint32(freeport.T(t))
}

func sockAddr(port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1",
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func staticCluster(name string, port uint32) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(port)}}}}}}}}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// strictListener is an Istio-style inbound listener: mTLS required, certificate and root by SDS name.
func strictListener(t *testing.T, port uint32, cluster string) *listenerv3.Listener {
	sds := func(name string) *tlsv3.SdsSecretConfig {
		return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}
	}
	dtc := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapBool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(identity.WorkloadSecret)},
			ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds(identity.RootSecret)},
		},
	}
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "inbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: "inbound", VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}}}}}}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}},
	}
	return &listenerv3.Listener{Name: "inbound-" + strconv.Itoa(int(port)), Address: sockAddr(port), FilterChains: []*listenerv3.FilterChain{{
		Filters:         []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)}}},
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, dtc)}},
	}}}
}

func wrapBool(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }
