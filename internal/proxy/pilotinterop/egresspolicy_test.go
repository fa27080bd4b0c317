package pilotinterop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/pilot/model"
)

// outsideHTTP is a real HTTP server on loopback standing for a host
// outside the mesh: it answers every request 200 "outside".
func outsideHTTP(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "outside") }),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestOutboundTrafficPolicy: a client sidecar configured by pilot over a
// real ADS stream calls an HTTP server and a TCP echo server on loopback
// that no Service or ServiceEntry names (as an app calls a host outside
// the mesh). Under Istio's default ALLOW_ANY both are reached through the
// passthrough; under REGISTRY_ONLY (mesh config, or a Sidecar, which wins
// over the mesh config either way) the HTTP request gets 502 from the
// proxy and the TCP connection is closed before any byte comes back; a
// ServiceEntry for each makes them reachable again.
func TestOutboundTrafficPolicy(t *testing.T) {
	web, echo := outsideHTTP(t), echoApp(t)
	// An HTTP service of the mesh on the web server's port: that port has
	// an HTTP listener, which routes by Host (an unknown host takes the
	// catch-all virtual host), as port 80 does in most meshes.
	partner := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: default}
spec:
  hosts: [api.partner.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %d, name: http, protocol: HTTP}]
  endpoints: [{address: 198.18.250.9}]
`, web.Port())
	registered := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: outside-web, namespace: default}
spec:
  hosts: [web.outside.example]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: %d, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: outside-echo, namespace: default}
spec:
  hosts: [echo.outside.example]
  addresses: [%s]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: %d, name: tcp, protocol: TCP}]
`, web.Port(), echo.Addr(), echo.Port())
	sidecar := func(mode string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: %s}
`, mode)
	}
	policy := func(m meshapi.MeshConfig_OutboundTrafficPolicy_Mode) *meshapi.MeshConfig {
		return &meshapi.MeshConfig{OutboundTrafficPolicy: &meshapi.MeshConfig_OutboundTrafficPolicy{Mode: m}}
	}
	allowAny, registryOnly := policy(meshapi.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY), policy(meshapi.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY)
	cases := []struct {
		name    string
		mesh    *meshapi.MeshConfig
		config  []string
		reached bool
	}{
		{"no mesh config (Istio's default ALLOW_ANY)", nil, nil, true},
		{"mesh ALLOW_ANY", allowAny, nil, true},
		{"mesh REGISTRY_ONLY", registryOnly, nil, false},
		{"mesh REGISTRY_ONLY, ServiceEntries for both", registryOnly, []string{registered}, true},
		{"mesh ALLOW_ANY, Sidecar REGISTRY_ONLY", allowAny, []string{sidecar("REGISTRY_ONLY")}, false},
		{"mesh REGISTRY_ONLY, Sidecar ALLOW_ANY", registryOnly, []string{sidecar("ALLOW_ANY")}, true},
		{"no mesh config, Sidecar REGISTRY_ONLY, ServiceEntries for both", nil, []string{sidecar("REGISTRY_ONLY"), registered}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, _ := world(t)
			w.In.Mesh = c.mesh
			for _, y := range append([]string{partner}, c.config...) {
				if err := w.AddYAML([]byte(y)); err != nil {
					t.Fatal(err)
				}
			}
			var dst atomic.Pointer[netip.AddrPort]
			dst.Store(&web)
			capture := startSidecarOutbound(t, pushContext(w), w.PodProxy(model.SidecarProxy, "productpage-v1"), &dst, nil)

			// HTTP: the app's request for web.outside.example, captured.
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", capture)
				}}}
			resp, err := client.Get(fmt.Sprintf("http://web.outside.example:%d/", web.Port()))
			if err != nil {
				t.Fatalf("HTTP through the sidecar: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if c.reached && (resp.StatusCode != 200 || string(body) != "outside") {
				t.Errorf("HTTP to web.outside.example: %d %q; want 200 from the outside server", resp.StatusCode, body)
			}
			if !c.reached && (resp.StatusCode != http.StatusBadGateway || string(body) == "outside") {
				t.Errorf("HTTP to web.outside.example: %d %q; want 502 from the proxy (BlackHole)", resp.StatusCode, body)
			}

			// TCP: a connection to the echo server's address and port.
			dst.Store(&echo)
			conn, err := net.DialTimeout("tcp", capture, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got, err := exchange(conn, "ping")
			if c.reached && (err != nil || got != "ping") {
				t.Errorf("TCP to %s: %q, %v; want the echo of ping", echo, got, err)
			}
			if !c.reached && (err == nil || got != "") {
				t.Errorf("TCP to %s: %q, %v; want the connection closed with nothing back", echo, got, err)
			}
		})
	}
}

// TestSidecarEgressProxy: under ALLOW_ANY a Sidecar's egressProxy takes
// the traffic no service claims instead of the passthrough: the app's
// request for an unknown host reaches the egress proxy (a ServiceEntry
// host the Sidecar sees), not the host it asked for; an egressProxy the
// Sidecar does not see drops the traffic rather than let it out directly.
func TestSidecarEgressProxy(t *testing.T) {
	web := outsideHTTP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	egress := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "egress proxy for %s", r.Host) }),
		ReadHeaderTimeout: 5 * time.Second}
	go egress.Serve(ln)
	t.Cleanup(func() { egress.Close() })
	egressPort := ln.Addr().(*net.TCPAddr).Port
	config := func(egressHost string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: default}
spec:
  hosts: [api.partner.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %d, name: http, protocol: HTTP}]
  endpoints: [{address: 198.18.250.9}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress, namespace: default}
spec:
  hosts: [egress.corp.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: %d, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: %s, port: {number: %d}}
`, web.Port(), egressPort, egressHost, egressPort)
	}
	for _, c := range []struct {
		name, egressHost, want string
		code                   int
	}{
		{"egress proxy seen", "egress.corp.example", fmt.Sprintf("egress proxy for web.outside.example:%d", web.Port()), 200},
		{"egress proxy not seen", "nowhere.corp.example", "", http.StatusServiceUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, _ := world(t)
			if err := w.AddYAML([]byte(config(c.egressHost))); err != nil {
				t.Fatal(err)
			}
			var dst atomic.Pointer[netip.AddrPort]
			dst.Store(&web)
			capture := startSidecarOutbound(t, pushContext(w), w.PodProxy(model.SidecarProxy, "productpage-v1"), &dst, nil)
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", capture)
				}}}
			resp, err := client.Get(fmt.Sprintf("http://web.outside.example:%d/", web.Port()))
			if err != nil {
				t.Fatalf("HTTP through the sidecar: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.code || c.want != "" && string(body) != c.want || string(body) == "outside" {
				t.Errorf("HTTP to web.outside.example: %d %q; want %d %q", resp.StatusCode, body, c.code, c.want)
			}
		})
	}
}
