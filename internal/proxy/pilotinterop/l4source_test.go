package pilotinterop

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

// TestSidecarL4SourceMatches: tcp and tls routes whose matches name the
// client (sourceLabels, sourceNamespace) send each client's connections
// where its own match says, as istiod builds them. Three client sidecars,
// each with pilot's config over its own ADS stream to a mesh-proxy, dial
// the same TCP address and the same TLS name: productpage (labels
// app=productpage) gets the sourceLabels route, a client in namespace
// "batch" the sourceNamespace route, reviews the route without a source
// match. Every client's connections all land on its backend.
func TestSidecarL4SourceMatches(t *testing.T) {
	ca := newBackendCA(t)
	tlsCert := ca.leaf(t, "w.secure.example.com")
	tcpPorts, tlsPorts := map[string]uint32{}, map[string]uint32{}
	for _, n := range []string{"A", "B", "C"} {
		tcpPorts[n] = lineServer(t, "tcp-"+n, nil)
		tlsPorts[n] = lineServer(t, "tls-"+n, &tlsCert)
	}
	w, _ := world(t)
	doc := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  addresses: [198.18.250.5]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 5432, name: tcp, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: w, namespace: default}
spec:
  hosts: [w.secure.example.com]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}]
`
	for _, n := range []string{"A", "B", "C"} {
		doc += fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-%[1]s, namespace: default}
spec:
  hosts: [db-%[1]s.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP, targetPort: %[2]d}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-%[1]s, namespace: default}
spec:
  hosts: [tls-%[1]s.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: %[3]d}]
  endpoints: [{address: 127.0.0.1}]
`, strings.ToLower(n), tcpPorts[n], tlsPorts[n])
	}
	doc += `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  tcp:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: db-a.example.com}}]
  - match: [{port: 5432, sourceNamespace: batch}]
    route: [{destination: {host: db-c.example.com}}]
  - route: [{destination: {host: db-b.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: w, namespace: default}
spec:
  hosts: [w.secure.example.com]
  tls:
  - match: [{sniHosts: [w.secure.example.com], sourceLabels: {app: productpage}}]
    route: [{destination: {host: tls-a.example.com}}]
  - match: [{sniHosts: [w.secure.example.com], sourceNamespace: batch, gateways: [mesh]}]
    route: [{destination: {host: tls-c.example.com}}]
  - match: [{sniHosts: [w.secure.example.com]}]
    route: [{destination: {host: tls-b.example.com}}]
`
	if err := w.AddYAML([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	w.AddNamespace("batch", nil)
	w.In.Pods = append(w.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "batch-job-0", Namespace: "batch", Labels: map[string]string{"app": "batch"}},
		Status:     corev1.PodStatus{PodIP: w.NextIP()},
	})
	pc := pushContext(w)

	clients := []struct{ pod, want string }{
		{"productpage-v1", "A"}, // sourceLabels app=productpage
		{"batch-job-0", "C"},    // sourceNamespace batch
		{"reviews-v1", "B"},     // no source match applies: the last route
	}
	for _, c := range clients {
		t.Run(c.pod, func(t *testing.T) {
			var dst atomic.Pointer[netip.AddrPort]
			dst.Store(ptr(netip.MustParseAddrPort("198.18.250.5:5432")))
			addr := startSidecarOutbound(t, pc, w.PodProxy(model.SidecarProxy, c.pod), &dst, nil)
			for i := 0; i < 10; i++ {
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				got, err := exchange(conn, "hello")
				if want := "tcp-" + c.want + " saw - hello"; err != nil || got != want {
					t.Fatalf("TCP connection %d to db.example.com from %s: %q, %v; want %q", i, c.pod, got, err, want)
				}
			}
			// The application dials an address no Service has; the SNI decides.
			dst.Store(ptr(netip.MustParseAddrPort("198.18.250.9:443")))
			for i := 0; i < 10; i++ {
				raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				raw.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Client(raw, &tls.Config{ServerName: "w.secure.example.com", RootCAs: ca.pool})
				if err := tc.Handshake(); err != nil {
					raw.Close()
					t.Fatalf("TLS connection %d to w.secure.example.com from %s: %v", i, c.pod, err)
				}
				got, err := exchange(tc, "hello")
				if want := "tls-" + c.want + " saw w.secure.example.com hello"; err != nil || got != want {
					t.Fatalf("TLS connection %d to w.secure.example.com from %s: %q, %v; want %q", i, c.pod, got, err, want)
				}
			}
		})
	}
}
