package pilotinterop

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// pemPair is a leaf of ca as PEM, for a Secret.
func (ca *backendCA) pemPair(t *testing.T, cn string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	backendSerial = new(big.Int).Add(backendSerial, big.NewInt(1))
	tmpl := &x509.Certificate{SerialNumber: backendSerial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if !client {
		tmpl.ExtKeyUsage, tmpl.DNSNames = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []string{cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func (ca *backendCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// egressWorld is Bookinfo with the egress gateway as the gateways chart
// runs it (pods labelled istio: egressgateway, Service ports 80→8080 and
// 443→8443) and Istio's egress gateway configuration for three external
// hosts, none of which any Service names: HTTP, TLS passthrough, and
// HTTP the gateway sends on over mutual TLS (TLS origination with the
// client certificate of a Secret in the gateway's namespace).
func egressWorld(t *testing.T, httpPort, tlsPort, mtlsPort uint32, secret *corev1.Secret) *pilottest.World {
	t.Helper()
	w, _ := world(t)
	w.In.Pods = append(w.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh-egressgateway-0", Namespace: "mesh-system", Labels: map[string]string{"istio": "egressgateway", "app": "mesh-egressgateway"}},
		Status:     corev1.PodStatus{PodIP: "198.18.200.2", Phase: corev1.PodRunning},
	})
	w.In.Secrets = append(w.In.Secrets, secret)
	w.In.SecretNamespaces = []string{"mesh-system"}
	if err := w.AddYAML([]byte(fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: mesh-egressgateway, namespace: mesh-system}
spec:
  selector: {istio: egressgateway}
  clusterIP: 198.19.0.50
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [plain.external.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-tls, namespace: default}
spec:
  hosts: [secure.external.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: %d}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-mtls, namespace: default}
spec:
  hosts: [mtls.external.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS, targetPort: %d}
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [plain.external.example, mtls.external.example]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [secure.external.example]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: plain-through-egress, namespace: default}
spec:
  hosts: [plain.external.example]
  gateways: [egress, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: mesh-egressgateway.mesh-system.svc.cluster.local, port: {number: 80}}}]
  - match: [{gateways: [egress], port: 80}]
    route: [{destination: {host: plain.external.example, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls-through-egress, namespace: default}
spec:
  hosts: [secure.external.example]
  gateways: [egress, mesh]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: [secure.external.example]}]
    route: [{destination: {host: mesh-egressgateway.mesh-system.svc.cluster.local, port: {number: 443}}}]
  - match: [{gateways: [egress], port: 443, sniHosts: [secure.external.example]}]
    route: [{destination: {host: secure.external.example, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mtls-through-egress, namespace: default}
spec:
  hosts: [mtls.external.example]
  gateways: [egress, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: mesh-egressgateway.mesh-system.svc.cluster.local, port: {number: 80}}}]
  - match: [{gateways: [egress], port: 80}]
    route: [{destination: {host: mtls.external.example, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-mtls, namespace: mesh-system}
spec:
  host: mtls.external.example
  exportTo: ["."]
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: MUTUAL, credentialName: client-credential}
`, httpPort, tlsPort, mtlsPort))); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestEgressGatewayPatterns runs Istio's egress gateway pattern with real
// processes' worth of config: pilot's config for an application's sidecar
// and for the egress gateway, each over its own ADS stream to a mesh-proxy,
// the sidecar's endpoints of the gateway's Service sent to the gateway's
// loopback listeners, and external servers on loopback that no Service
// names. HTTP goes application → sidecar → egress gateway → external (the
// two VirtualService hops, told apart by match.gateways); TLS goes the
// same way by SNI without either proxy ending it (the application sees
// the external server's certificate); and plain HTTP to the egress
// gateway leaves it as mutual TLS with the client certificate of a Secret
// in the gateway's namespace (DestinationRule MUTUAL, credentialName), the
// external server checking it against its client CA.
func TestEgressGatewayPatterns(t *testing.T) {
	serverCA, clientCA := newBackendCA(t), newBackendCA(t)
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "external saw %s%s", r.Host, r.URL.Path)
	})}
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	go httpSrv.Serve(hl)
	t.Cleanup(func() { httpSrv.Close() })
	tlsCert := serverCA.leaf(t, "secure.external.example")
	tlsPort := lineServer(t, "external", &tlsCert)
	mtlsCert := serverCA.leaf(t, "mtls.external.example")
	mtlsSrv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "mtls server saw %s%s from %s", r.Host, r.URL.Path, r.TLS.PeerCertificates[0].Subject.CommonName)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{mtlsCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.pool}}
	ml, _ := net.Listen("tcp", "127.0.0.1:0")
	go mtlsSrv.ServeTLS(ml, "", "")
	t.Cleanup(func() { mtlsSrv.Close() })
	clientCert, clientKey := clientCA.pemPair(t, "egress client", true)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "client-credential", Namespace: "mesh-system"}, Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey, "ca.crt": serverCA.pem()}}

	xw := egressWorld(t, uint32(hl.Addr().(*net.TCPAddr).Port), tlsPort, uint32(ml.Addr().(*net.TCPAddr).Port), secret)
	pc := pushContext(xw)
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	egressNode := model.NodeID(model.Router, "198.18.200.2", "mesh-egressgateway-0", "mesh-system")
	gw := startRouter(t, pc, egressNode, &ca.SecretCache{CA: authority, TTL: time.Hour})
	if gw["0.0.0.0_8080"] == 0 || gw["0.0.0.0_8443"] == 0 {
		t.Fatalf("egress gateway listeners %v: want 0.0.0.0_8080 and 0.0.0.0_8443 (the Service's target ports)", gw)
	}
	var dst atomic.Pointer[netip.AddrPort]
	sidecar := startSidecarOutbound(t, pc, xw.PodProxy(model.SidecarProxy, "productpage-v1"), &dst, map[string]netip.AddrPort{
		"outbound|80||mesh-egressgateway.mesh-system.svc.cluster.local":  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(gw["0.0.0.0_8080"])),
		"outbound|443||mesh-egressgateway.mesh-system.svc.cluster.local": netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(gw["0.0.0.0_8443"])),
	})
	// What the application dialled: an address of the external host's that
	// no Service has (DNS would give it), on the port it wants.
	dial := func(port uint16) net.Conn {
		dst.Store(ptr(netip.AddrPortFrom(netip.MustParseAddr("198.18.250.9"), port)))
		c, err := net.DialTimeout("tcp", sidecar, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	httpGet := func(host string) string {
		t.Helper()
		c := dial(80)
		defer c.Close()
		fmt.Fprintf(c, "GET /path HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET http://%s/path through sidecar and egress gateway: %v", host, err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		if resp.StatusCode != 200 {
			t.Fatalf("GET http://%s/path: %d %s", host, resp.StatusCode, b.String())
		}
		return b.String()
	}

	t.Run("HTTP", func(t *testing.T) {
		if got := httpGet("plain.external.example"); got != "external saw plain.external.example/path" {
			t.Errorf("answer %q; want the external server's", got)
		}
	})
	t.Run("TLS passthrough", func(t *testing.T) {
		c := tls.Client(dial(443), &tls.Config{ServerName: "secure.external.example", RootCAs: serverCA.pool})
		if err := c.Handshake(); err != nil {
			t.Fatalf("TLS to secure.external.example through sidecar and egress gateway: %v", err)
		}
		if got := c.ConnectionState().PeerCertificates[0]; string(got.Raw) != string(tlsCert.Certificate[0]) {
			t.Errorf("the application saw certificate %q; want the external server's own", got.Subject.CommonName)
		}
		if got, err := exchange(c, "hello"); err != nil || got != "external saw secure.external.example hello" {
			t.Errorf("answer %q, %v; want the external server's", got, err)
		}
	})
	t.Run("TLS origination with a client certificate", func(t *testing.T) {
		if got := httpGet("mtls.external.example"); got != "mtls server saw mtls.external.example/path from egress client" {
			t.Errorf("answer %q; want the mutual-TLS server's, having seen the Secret's client certificate", got)
		}
	})
}
