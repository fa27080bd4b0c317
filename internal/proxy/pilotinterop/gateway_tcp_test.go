package pilotinterop

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/agent"
)

// backendCA signs the certificates of the TLS backends behind a
// passthrough gateway; clients trust it, the gateway never sees its keys.
type backendCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newBackendCA(t *testing.T) *backendCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backend CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &backendCA{cert: c, key: key, pool: pool}
}

var backendSerial = big.NewInt(100)

func (ca *backendCA) leaf(t *testing.T, dns ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	backendSerial = new(big.Int).Add(backendSerial, big.NewInt(1))
	tmpl := &x509.Certificate{SerialNumber: backendSerial, Subject: pkix.Name{CommonName: dns[0]}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// lineServer answers each connection with one line, "NAME saw SNI LINE",
// after reading one line from it; over TLS when cert is given (the
// backend then ends TLS itself), else in plaintext. It returns its port.
func lineServer(t *testing.T, name string, cert *tls.Certificate) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				sni := "-"
				if cert != nil {
					tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*cert}})
					if tc.Handshake() != nil {
						return
					}
					sni = tc.ConnectionState().ServerName
					c = tc
				}
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s saw %s %s", name, sni, line)
			}(c)
		}
	}()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

var ingressNode = model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system")

// startRouter serves pilot's config for a gateway pod over ADS to a
// mesh-proxy whose listeners are moved to loopback; it returns the
// loopback port of each of pilot's listeners, by name. secrets, when not
// nil, stands for an mTLS-authenticated xDS stream: the gateway gets its
// workload certificate and the Secrets its config names.
func startRouter(t *testing.T, pc *xds.PushContext, node string, secrets xds.SecretSource) map[string]uint32 {
	t.Helper()
	p, err := model.ParseNodeID(node)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pc.Generate(p, secrets)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]uint32{}
	listeners := onLoopback(t, r.Items(resourcev3.ListenerType))
	for _, res := range listeners {
		l := res.(*listenerv3.Listener)
		ports[l.GetName()] = l.GetAddress().GetSocketAddress().GetPortValue()
	}
	ads := startADS(t)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  r.Items(resourcev3.ClusterType),
		resourcev3.EndpointType: r.Items(resourcev3.EndpointType),
		resourcev3.ListenerType: listeners,
		resourcev3.RouteType:    r.Items(resourcev3.RouteType),
		resourcev3.SecretType:   r.Items(resourcev3.SecretType),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ads.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
	px, err := agent.New(agent.Options{XDSAddress: ads.addr, NodeID: node, AdminAddress: "127.0.0.1:0",
		XDSBackoff: [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := px.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); px.Close() })
	ads.waitACK(t, resourcev3.ListenerType, resourcev3.ClusterType)
	return ports
}

// exchange sends one line over conn and returns the one line answered.
func exchange(conn net.Conn, line string) (string, error) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(got), err
}

// tlsThrough opens TLS to sni through the gateway's port, verifying the
// server's certificate against the backends' CA, and exchanges a line;
// it returns the answer and the certificate the client saw.
func tlsThrough(port uint32, sni string, pool *x509.CertPool) (string, *x509.Certificate, error) {
	raw, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		return "", nil, err
	}
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, &tls.Config{ServerName: sni, RootCAs: pool})
	if err := c.Handshake(); err != nil {
		raw.Close()
		return "", nil, err
	}
	peer := c.ConnectionState().PeerCertificates[0]
	got, err := exchange(c, "hello")
	return got, peer, err
}

// TestGatewayTLSPassthroughAndTCP: pilot's config for a gateway with a
// PASSTHROUGH server and a TCP server, over a real ADS stream to
// mesh-proxy, in front of real backends on loopback. The gateway picks
// the backend by the ClientHello's SNI (the VirtualService's tls routes)
// without ending TLS, so the client sees the backend's own certificate;
// a weighted tls route spreads connections over both of its backends; an
// SNI no route names gets no handshake; the TCP server proxies by the
// tcp route of its port, weighted too.
func TestGatewayTLSPassthroughAndTCP(t *testing.T) {
	ca := newBackendCA(t)
	certA, certB := ca.leaf(t, "a.secure.example.com", "w.secure.example.com"), ca.leaf(t, "w.secure.example.com")
	portA, portB := lineServer(t, "A", &certA), lineServer(t, "B", &certB)
	tcp1, tcp2 := lineServer(t, "tcp-1", nil), lineServer(t, "tcp-2", nil)
	w, _ := world(t)
	if err := w.AddYAML([]byte(fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend-a, namespace: default}
spec:
  hosts: [a.backend.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %d, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend-b, namespace: default}
spec:
  hosts: [b.backend.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %d, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-backends, namespace: default}
spec:
  hosts: [tcp1.backend.internal, tcp2.backend.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %d, name: tcp-1, protocol: TCP}, {number: %d, name: tcp-2, protocol: TCP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.secure.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: default}
spec:
  hosts: ["*.secure.example.com"]
  gateways: [edge]
  tls:
  - match: [{port: 443, sniHosts: [a.secure.example.com]}]
    route: [{destination: {host: a.backend.internal}}]
  - match: [{port: 443, sniHosts: [w.secure.example.com]}]
    route:
    - {destination: {host: a.backend.internal}, weight: 50}
    - {destination: {host: b.backend.internal}, weight: 50}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: default}
spec:
  hosts: ["*"]
  gateways: [edge]
  tcp:
  - match: [{port: 31400}]
    route:
    - {destination: {host: tcp1.backend.internal, port: {number: %d}}, weight: 50}
    - {destination: {host: tcp2.backend.internal, port: {number: %d}}, weight: 50}
`, portA, portB, tcp1, tcp2, tcp1, tcp2))); err != nil {
		t.Fatal(err)
	}
	ports := startRouter(t, pushContext(w), ingressNode, nil)
	tlsPort, tcpPort := ports["0.0.0.0_443"], ports["0.0.0.0_31400"]
	if tlsPort == 0 || tcpPort == 0 {
		t.Fatalf("pilot's listeners %v: want 0.0.0.0_443 (passthrough) and 0.0.0.0_31400 (TCP)", ports)
	}

	got, peer, err := tlsThrough(tlsPort, "a.secure.example.com", ca.pool)
	if err != nil {
		t.Fatalf("TLS to a.secure.example.com through the gateway: %v", err)
	}
	if got != "A saw a.secure.example.com hello" {
		t.Errorf("a.secure.example.com answered %q; want backend A, which saw the client's SNI", got)
	}
	if string(peer.Raw) != string(certA.Certificate[0]) {
		t.Errorf("the client saw certificate %q; want backend A's own (TLS passes through the gateway)", peer.Subject.CommonName)
	}

	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		got, _, err := tlsThrough(tlsPort, "w.secure.example.com", ca.pool)
		if err != nil {
			t.Fatalf("TLS to w.secure.example.com, connection %d: %v", i, err)
		}
		seen[strings.Fields(got)[0]]++
	}
	if len(seen) != 2 || seen["A"] == 0 || seen["B"] == 0 {
		t.Errorf("40 connections to the 50/50 tls route reached %v; want both A and B", seen)
	}

	if got, _, err := tlsThrough(tlsPort, "other.secure.example.com", ca.pool); err == nil {
		t.Errorf("an SNI no tls route names was proxied (answer %q); want the connection closed", got)
	}

	seen = map[string]int{}
	for i := 0; i < 40; i++ {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, err := exchange(conn, "ping")
		if err != nil {
			t.Fatalf("TCP through the gateway, connection %d: %v", i, err)
		}
		if !strings.HasSuffix(got, " saw - ping") {
			t.Fatalf("TCP answer %q", got)
		}
		seen[strings.Fields(got)[0]]++
	}
	if len(seen) != 2 || seen["tcp-1"] == 0 || seen["tcp-2"] == 0 {
		t.Errorf("40 TCP connections to the 50/50 tcp route reached %v; want both backends", seen)
	}
}

// startSidecarOutbound serves pilot's config for a client pod's sidecar
// over ADS to a mesh-proxy whose 15001 capture listener is on loopback;
// every connection it accepts looks redirected to dst (as it is when the
// connection is accepted), and the endpoints of the clusters named in
// redirect are replaced by the loopback addresses given. It returns the
// capture listener's address.
func startSidecarOutbound(t *testing.T, pc *xds.PushContext, node string, dst *atomic.Pointer[netip.AddrPort], redirect map[string]netip.AddrPort) string {
	t.Helper()
	p, err := model.ParseNodeID(node)
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pc.Generate(p, &ca.SecretCache{CA: authority, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var addr string
	var listeners []types.Resource
	for _, res := range r.Items(resourcev3.ListenerType) {
		l := res.(*listenerv3.Listener)
		switch l.GetName() {
		case xds.VirtualInbound: // this side only sends
			continue
		case xds.VirtualOutbound:
			l = onLoopback(t, []types.Resource{l})[0].(*listenerv3.Listener)
			sa := l.GetAddress().GetSocketAddress()
			addr = fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
		}
		listeners = append(listeners, l) // the per-port listeners bind nothing
	}
	ads := startADS(t)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  r.Items(resourcev3.ClusterType),
		resourcev3.EndpointType: redirectEndpoints(r.Items(resourcev3.EndpointType), redirect),
		resourcev3.ListenerType: listeners,
		resourcev3.RouteType:    r.Items(resourcev3.RouteType),
		resourcev3.SecretType:   r.Items(resourcev3.SecretType),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ads.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
	px, err := agent.New(agent.Options{XDSAddress: ads.addr, NodeID: node, AdminAddress: "127.0.0.1:0",
		XDSBackoff:  [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond},
		OriginalDst: func(net.Conn) (netip.AddrPort, bool) { return *dst.Load(), true }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := px.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); px.Close() })
	types := []string{resourcev3.ListenerType, resourcev3.ClusterType}
	if len(r.Items(resourcev3.RouteType)) > 0 {
		types = append(types, resourcev3.RouteType) // an HTTP port without its routes answers 404
	}
	ads.waitACK(t, types...)
	return addr
}

// TestSidecarRoutesTLSBySNI: an application's TLS connection to port 443,
// captured by its sidecar (pilot's config over a real ADS stream), goes
// where its SNI says: to the ServiceEntry naming that host (no address,
// so SNI is all there is to go by), or by a VirtualService tls route,
// weighted, to two external backends; the sidecar never ends the TLS, so
// the application sees the backend's own certificate.
func TestSidecarRoutesTLSBySNI(t *testing.T) {
	ca := newBackendCA(t)
	certA, certB := ca.leaf(t, "a.secure.example.com", "w.secure.example.com"), ca.leaf(t, "w.secure.example.com", "b.secure.example.com")
	portA, portB := lineServer(t, "A", &certA), lineServer(t, "B", &certB)
	w, _ := world(t)
	if err := w.AddYAML([]byte(fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.secure.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: %d}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: default}
spec:
  hosts: [b.secure.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: %d}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: w, namespace: default}
spec:
  hosts: [w.secure.example.com]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: w, namespace: default}
spec:
  hosts: [w.secure.example.com]
  tls:
  - match: [{port: 443, sniHosts: [w.secure.example.com]}]
    route:
    - {destination: {host: a.secure.example.com}, weight: 50}
    - {destination: {host: b.secure.example.com}, weight: 50}
`, portA, portB))); err != nil {
		t.Fatal(err)
	}
	// The address the application dialled: not one any Service has.
	var dst atomic.Pointer[netip.AddrPort]
	dst.Store(ptr(netip.MustParseAddrPort("198.18.250.1:443")))
	addr := startSidecarOutbound(t, pushContext(w), w.PodProxy(model.SidecarProxy, "productpage-v1"), &dst, nil)
	dial := func(sni string) (string, *x509.Certificate, error) {
		raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return "", nil, err
		}
		raw.SetDeadline(time.Now().Add(5 * time.Second))
		c := tls.Client(raw, &tls.Config{ServerName: sni, RootCAs: ca.pool})
		if err := c.Handshake(); err != nil {
			raw.Close()
			return "", nil, err
		}
		peer := c.ConnectionState().PeerCertificates[0]
		got, err := exchange(c, "hello")
		return got, peer, err
	}
	got, peer, err := dial("a.secure.example.com")
	if err != nil {
		t.Fatalf("TLS to a.secure.example.com through the sidecar: %v", err)
	}
	if got != "A saw a.secure.example.com hello" || string(peer.Raw) != string(certA.Certificate[0]) {
		t.Errorf("a.secure.example.com: answer %q from %q; want backend A with its own certificate", got, peer.Subject.CommonName)
	}
	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		got, _, err := dial("w.secure.example.com")
		if err != nil {
			t.Fatalf("TLS to w.secure.example.com, connection %d: %v", i, err)
		}
		seen[strings.Fields(got)[0]]++
	}
	if len(seen) != 2 || seen["A"] == 0 || seen["B"] == 0 {
		t.Errorf("40 connections by the 50/50 tls route reached %v; want both A and B", seen)
	}
}

func ptr[T any](v T) *T { return &v }
