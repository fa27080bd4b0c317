package pilotinterop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/agent"
)

// detectWorld is Bookinfo plus four Services whose ports have no name and
// no appProtocol, so Istio detects their protocol: web (an HTTP server
// speaking HTTP/1.1 and HTTP/2 in plaintext) on 7000 with a VirtualService
// that rewrites /old and aborts with 418 on a header; line (a client-first
// TCP protocol) on 7001; banner (a server-first one) on 7002; and the same
// server-first app as db on 3306, a port Istio takes as TCP.
const detectWorld = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 198.19.7.1, selector: {app: web}, ports: [{port: 7000}]}
---
apiVersion: v1
kind: Service
metadata: {name: line, namespace: default}
spec: {clusterIP: 198.19.7.2, selector: {app: line}, ports: [{port: 7001}]}
---
apiVersion: v1
kind: Service
metadata: {name: banner, namespace: default}
spec: {clusterIP: 198.19.7.3, selector: {app: banner}, ports: [{port: 7002}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec: {clusterIP: 198.19.7.4, selector: {app: db}, ports: [{port: 3306}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: default}
spec: {template: {metadata: {labels: {app: web}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: line-v1, namespace: default}
spec: {template: {metadata: {labels: {app: line}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: banner-v1, namespace: default}
spec: {template: {metadata: {labels: {app: banner}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db-v1, namespace: default}
spec: {template: {metadata: {labels: {app: db}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match: [{headers: {x-teapot: {exact: "1"}}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/}
    route: [{destination: {host: web}}]
  - route: [{destination: {host: web}}]
`

// webApp answers "<proto> <path> xfp=<X-Forwarded-Proto>" in HTTP/1.1 and
// in HTTP/2 with prior knowledge: the protocol the request reached it in,
// the path after any rewrite, and the header an HTTP connection manager
// sets (a TCP proxy passes the request untouched, without it).
func webApp(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: p, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s xfp=%s", r.Proto, r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// lineApp is a client-first TCP protocol: every line it reads comes back
// as "<name>: <line>"; a server-first one (greet) first writes
// "220 <name> ready" as soon as the connection is open, as SMTP or MySQL do.
func lineApp(t *testing.T, name string, greet bool) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				if greet {
					fmt.Fprintf(c, "220 %s ready\r\n", name)
				}
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					fmt.Fprintf(c, "%s: %s", name, l)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// detectingClient is a client pod's sidecar as pilot configures it, its
// capture listener on loopback, every connection it accepts looking
// redirected to *dst, and its endpoints of each named service sent to
// that service's server sidecar (mTLS metadata kept, so the hop between
// the sidecars is mesh mTLS as pilot sets it up).
func detectingClient(t *testing.T, pc *xds.PushContext, node string, authority *ca.Authority, servers map[string]*inbound) (string, *atomic.Pointer[netip.AddrPort]) {
	t.Helper()
	p, err := model.ParseNodeID(node)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pc.Generate(p, &ca.SecretCache{CA: authority, TTL: time.Hour})
	if err != nil {
		t.Fatalf("pilot generate for %s: %v", node, err)
	}
	var addr string
	var listeners []types.Resource
	for _, res := range r.Items(resourcev3.ListenerType) {
		l := res.(*listenerv3.Listener)
		switch l.GetName() {
		case xds.VirtualInbound:
			continue
		case xds.VirtualOutbound:
			l = onLoopback(t, []types.Resource{l})[0].(*listenerv3.Listener)
			sa := l.GetAddress().GetSocketAddress()
			addr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
		}
		listeners = append(listeners, l)
	}
	var endpoints []types.Resource
	for _, res := range r.Items(resourcev3.EndpointType) {
		cla := res.(*endpointv3.ClusterLoadAssignment)
		for svc, server := range servers {
			if !strings.HasSuffix(cla.GetClusterName(), "||"+svc+".default.svc.cluster.local") {
				continue
			}
			to := netip.MustParseAddrPort(server.addr)
			cla = proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
			for _, le := range cla.Endpoints {
				for _, lb := range le.LbEndpoints {
					lb.GetEndpoint().Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: to.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(to.Port())}}}}
				}
			}
		}
		endpoints = append(endpoints, cla)
	}
	ads := startADS(t)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  r.Items(resourcev3.ClusterType),
		resourcev3.EndpointType: endpoints,
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
	var dst atomic.Pointer[netip.AddrPort]
	dst.Store(ptr(netip.MustParseAddrPort("198.19.7.1:7000")))
	px, err := agent.New(agent.Options{XDSAddress: ads.addr, NodeID: node, AdminAddress: "127.0.0.1:0", Peer: nodePeers[node],
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
	ads.waitACK(t, resourcev3.ListenerType, resourcev3.ClusterType, resourcev3.RouteType, resourcev3.EndpointType, resourcev3.SecretType)
	return addr, &dst
}

// serveAs starts the server sidecar of pod with app behind it; every
// connection it accepts looks sent to the pod's port.
func serveAs(t *testing.T, w *pilottest.World, pc *xds.PushContext, authority *ca.Authority, pod string, port uint16, app netip.AddrPort) *inbound {
	t.Helper()
	s := startInboundTo(t, w, pc, pod, authority, app)
	go func() {
		for {
			select {
			case s.dst <- netip.AddrPortFrom(s.podIP, port):
			case <-t.Context().Done():
				return
			}
		}
	}()
	return s
}

// detectionWorld builds the world with the mesh config given and starts
// the four server sidecars and the client's (productpage's).
func detectionWorld(t *testing.T, mesh *meshapi.MeshConfig) (client string, dst *atomic.Pointer[netip.AddrPort], servers map[string]*inbound) {
	t.Helper()
	w, _ := world(t)
	if err := w.AddYAML([]byte(detectWorld)); err != nil {
		t.Fatal(err)
	}
	w.In.Mesh = mesh
	pc := pushContext(w)
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	servers = map[string]*inbound{
		"web":    serveAs(t, w, pc, authority, "web-v1", 7000, webApp(t)),
		"line":   serveAs(t, w, pc, authority, "line-v1", 7001, lineApp(t, "line", false)),
		"banner": serveAs(t, w, pc, authority, "banner-v1", 7002, lineApp(t, "banner", true)),
		"db":     serveAs(t, w, pc, authority, "db-v1", 3306, lineApp(t, "db", true)),
	}
	client, dst = detectingClient(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"), authority, servers)
	return client, dst, servers
}

// get sends one HTTP/1.1 request over conn and returns the status and body.
func getOver(conn net.Conn, path string, hdr ...string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://web:7000"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if err := req.Write(conn); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestProtocolDetectionOnUnnamedPorts: Services whose ports declare no
// protocol (no name prefix, no appProtocol) get Istio's protocol
// detection in both sidecars (pilot's config over real ADS streams, real
// sockets, mesh mTLS between the sidecars). HTTP/1.1 and HTTP/2 (prior
// knowledge) requests are recognised on their first bytes and routed by
// the VirtualService (rewrite, fault); the server sidecar takes them as
// HTTP too (its connection manager sets X-Forwarded-Proto https, from the
// mTLS it ended). A client-first TCP protocol, even one starting like a
// request, passes through at once with no detection timeout. A
// server-first one on 3306 works (Istio takes the port as TCP); on 7002
// it stalls until the client speaks, as Istio documents for the default
// protocolDetectionTimeout of 0s, and with a timeout set its greeting
// arrives once the timeout passes.
func TestProtocolDetectionOnUnnamedPorts(t *testing.T) {
	client, dst, servers := detectionWorld(t, nil)
	dial := func(t *testing.T, to string) net.Conn {
		t.Helper()
		dst.Store(ptr(netip.MustParseAddrPort(to)))
		conn, err := net.DialTimeout("tcp", client, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		return conn
	}
	// readLine reads one line, failing the test on an error.
	readLine := func(t *testing.T, br *bufio.Reader) string {
		t.Helper()
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, l)
		}
		return l
	}

	t.Run("HTTP/1.1 routed by the VirtualService", func(t *testing.T) {
		conn := dial(t, "198.19.7.1:7000")
		code, body, err := getOver(conn, "/old/page")
		if err != nil || code != 200 || body != "HTTP/1.1 /new/page xfp=https" {
			t.Fatalf("GET /old/page: %d %q (%v); want 200 \"HTTP/1.1 /new/page xfp=https\" (rewritten by the route, ended as HTTP by the server sidecar)", code, body, err)
		}
		// The same connection keeps being HTTP: a second request is routed too.
		code, body, err = getOver(conn, "/x", "x-teapot", "1")
		if err != nil || code != 418 {
			t.Fatalf("GET /x with x-teapot: %d %q (%v); want the route's fault, 418", code, body, err)
		}
	})
	t.Run("HTTP/2 preface routed by the VirtualService", func(t *testing.T) {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		dst.Store(ptr(netip.MustParseAddrPort("198.19.7.1:7000")))
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Protocols: p,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", client)
			}}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://web:7000/old/h2")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "HTTP/2.0 /new/h2 xfp=https" {
			t.Fatalf("h2c GET /old/h2: %s %s %q; want 200 over HTTP/2 and \"HTTP/2.0 /new/h2 xfp=https\" (detected as HTTP/2 by both sidecars, upstream in the client's protocol)", resp.Proto, resp.Status, body)
		}
	})
	t.Run("client-first TCP passes at once", func(t *testing.T) {
		conn := dial(t, "198.19.7.2:7001")
		br := bufio.NewReader(conn)
		// "GET\n" begins like a request and is not one; "hello" is no HTTP at all.
		for _, msg := range []string{"GET\n", "hello\n", "PUT /x HTTP/3\n"} {
			io.WriteString(conn, msg)
			if got := readLine(t, br); got != "line: "+msg {
				t.Fatalf("sent %q, got %q; want it echoed through both sidecars as TCP", msg, got)
			}
		}
	})
	t.Run("server-first TCP on 3306", func(t *testing.T) {
		conn := dial(t, "198.19.7.4:3306")
		br := bufio.NewReader(conn)
		if got := readLine(t, br); got != "220 db ready\r\n" {
			t.Fatalf("greeting %q; want the server's, unprompted (3306 is TCP, not detected)", got)
		}
	})
	t.Run("server-first TCP on an unnamed port waits for the client", func(t *testing.T) {
		conn := dial(t, "198.19.7.3:7002")
		conn.SetReadDeadline(time.Now().Add(time.Second))
		var b [1]byte
		if n, err := conn.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read %d bytes (%v) before the client spoke; want none: detection waits for the client's first bytes (timeout 0s)", n, err)
		}
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(conn, "hi\n")
		br := bufio.NewReader(conn)
		if got := readLine(t, br) + readLine(t, br); got != "220 banner ready\r\nbanner: hi\n" {
			t.Fatalf("after the client spoke: %q; want the greeting, then the echo", got)
		}
	})
	t.Run("plaintext to the server sidecar", func(t *testing.T) {
		// No PeerAuthentication: PERMISSIVE; plaintext is detected too.
		// (Each server sidecar takes every connection as one to its pod's port.)
		plain := func(t *testing.T, s *inbound) net.Conn {
			t.Helper()
			conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			return conn
		}
		code, body, err := getOver(plain(t, servers["web"]), "/p")
		if err != nil || code != 200 || body != "HTTP/1.1 /p xfp=http" {
			t.Fatalf("plaintext GET /p: %d %q (%v); want 200 \"HTTP/1.1 /p xfp=http\" (the HTTP chain)", code, body, err)
		}
		conn := plain(t, servers["line"])
		io.WriteString(conn, "plain\n")
		if got := readLine(t, bufio.NewReader(conn)); got != "line: plain\n" {
			t.Fatalf("plaintext line: %q; want it echoed (the TCP chain)", got)
		}
	})

	t.Run("protocolDetectionTimeout", func(t *testing.T) {
		client, dst, _ := detectionWorld(t, &meshapi.MeshConfig{ProtocolDetectionTimeout: durationpb.New(300 * time.Millisecond)})
		dst.Store(ptr(netip.MustParseAddrPort("198.19.7.3:7002")))
		conn, err := net.DialTimeout("tcp", client, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(conn)
		if got := readLine(t, br); got != "220 banner ready\r\n" {
			t.Fatalf("greeting %q; want the server's, once the detection timeout passed", got)
		}
		io.WriteString(conn, "after\n")
		if got := readLine(t, br); got != "banner: after\n" {
			t.Fatalf("echo %q; want \"banner: after\"", got)
		}
	})
}
