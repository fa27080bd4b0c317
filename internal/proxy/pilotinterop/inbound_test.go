package pilotinterop

import (
	"context"
	"crypto"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/agent"
)

// inbound is one pod's sidecar as pilot configures it, fed over a real ADS
// stream (with the pod's workload certificate over SDS) to a mesh-proxy
// whose 15006 capture listener is on loopback. Every connection it accepts
// looks redirected to the pod's address and the port a test picks, as the
// iptables capture makes it; its inbound clusters send to a local app.
type inbound struct {
	addr  string // the capture listener
	proxy *agent.Proxy
	ca    *ca.Authority
	podIP netip.Addr
	dst   chan netip.AddrPort // the original destination of the next connection
}

// newApp starts an application on loopback and returns its address: a
// captured connection whose original destination it is reaches it through
// the passthrough cluster, as a port no Service names does in a pod.
func newApp(t *testing.T) netip.AddrPort {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		io.WriteString(rw, "app saw "+req.URL.Path)
	}))
	t.Cleanup(app.Close)
	return netip.MustParseAddrPort(app.Listener.Addr().String())
}

func startInbound(t *testing.T, w *pilottest.World, pc *xds.PushContext, podPrefix string) *inbound {
	t.Helper()
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return startInboundTo(t, w, pc, podPrefix, authority, newApp(t))
}

// startInboundTo is startInbound with the mesh CA and the app given.
func startInboundTo(t *testing.T, w *pilottest.World, pc *xds.PushContext, podPrefix string, authority *ca.Authority, app netip.AddrPort) *inbound {
	t.Helper()
	return startInboundPath(t, w, pc, podPrefix, authority, app, false)
}

// startInboundPath is startInboundTo with the request path chosen: the
// lean HTTP/1.1 loop, or net/http for everything (noLean).
func startInboundPath(t *testing.T, w *pilottest.World, pc *xds.PushContext, podPrefix string, authority *ca.Authority, app netip.AddrPort, noLean bool) *inbound {
	t.Helper()
	return startInboundOpts(t, w, pc, podPrefix, authority, app, inboundOpts{noLean: noLean})
}

// inboundOpts: noLean serves everything on net/http; endpoints sends the
// named (outbound) clusters to loopback addresses instead of pod IPs.
type inboundOpts struct {
	noLean    bool
	endpoints map[string]netip.AddrPort
	anyAddr   bool // bind the capture listener on 0.0.0.0, as pilot writes it, not on 127.0.0.1
}

func startInboundOpts(t *testing.T, w *pilottest.World, pc *xds.PushContext, podPrefix string, authority *ca.Authority, app netip.AddrPort, o inboundOpts) *inbound {
	t.Helper()
	noLean := o.noLean
	node := w.PodProxy(model.SidecarProxy, podPrefix)
	p, err := model.ParseNodeID(node)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pc.Generate(p, &ca.SecretCache{CA: authority, TTL: time.Hour})
	if err != nil {
		t.Fatalf("pilot generate for %s: %v", node, err)
	}
	appPort := uint32(app.Port())

	var listeners []types.Resource
	h := &inbound{ca: authority, dst: make(chan netip.AddrPort, 1), podIP: netip.MustParseAddr(p.IP)}
	for _, res := range r.Items(resourcev3.ListenerType) {
		l := res.(*listenerv3.Listener)
		if l.GetName() != xds.VirtualInbound {
			continue
		}
		moved := onLoopback(t, []types.Resource{l})[0].(*listenerv3.Listener)
		sa := moved.GetAddress().GetSocketAddress()
		if o.anyAddr {
			sa.Address = "0.0.0.0"
		}
		h.addr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
		listeners = append(listeners, moved)
	}
	if h.addr == "" {
		t.Fatalf("pilot sent %s no %s listener", node, xds.VirtualInbound)
	}
	var clusters []types.Resource
	for _, res := range r.Items(resourcev3.ClusterType) {
		c := res.(*clusterv3.Cluster)
		if strings.HasPrefix(c.GetName(), "inbound|") && c.GetLoadAssignment() != nil {
			c = proto.Clone(c).(*clusterv3.Cluster)
			c.LoadAssignment.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
					SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: appPort}}}}}},
			}}}}
		}
		clusters = append(clusters, c)
	}
	ads := startADS(t)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  clusters,
		resourcev3.EndpointType: redirectEndpoints(overrideEndpoints(r.Items(resourcev3.EndpointType)), o.endpoints),
		resourcev3.ListenerType: listeners,
		resourcev3.SecretType:   r.Items(resourcev3.SecretType),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ads.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
	px, err := agent.New(agent.Options{XDSAddress: ads.addr, NodeID: node, AdminAddress: "127.0.0.1:0", NoLean: noLean, Peer: nodePeers[node],
		XDSBackoff: [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond},
		OriginalDst: func(net.Conn) (netip.AddrPort, bool) {
			return <-h.dst, true
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := px.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); px.Close() })
	ads.waitACK(t, resourcev3.ListenerType, resourcev3.SecretType)
	h.proxy = px
	return h
}

// waitACK waits until the proxy ACKed version 1 of every type listed, and
// fails on any NACK.
func (s *adsServer) waitACK(t *testing.T, types ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		nacks, acked := s.nacks, true
		for _, typ := range types {
			acked = acked && s.acks[typ] == "1"
		}
		s.mu.Unlock()
		if len(nacks) > 0 {
			t.Fatalf("mesh-proxy NACKed pilot's config: %s", strings.Join(nacks, "\n"))
		}
		if acked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ACK of pilot's %v after 10s", types)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call sends GET path to the pod's port as the workload ns/sa over mesh
// mTLS, or in plaintext when ns is "". It returns the status, or an error
// when the connection is refused or torn down.
func (h *inbound) call(t *testing.T, port uint16, ns, sa, path string) (int, error) {
	t.Helper()
	return h.callTo(t, netip.AddrPortFrom(h.podIP, port), ns, sa, path)
}

// callTo is call with the original destination given whole, and headers
// as name, value pairs.
func (h *inbound) callTo(t *testing.T, dst netip.AddrPort, ns, sa, path string, hdr ...string) (int, error) {
	t.Helper()
	conn, err := h.dial(t, dst, ns, sa)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	req, _ := http.NewRequest("GET", "http://reviews:9080"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if err := req.Write(conn); err != nil {
		return 0, err
	}
	buf := make([]byte, 4096)
	n, err := io.ReadAtLeast(conn, buf, 12)
	if err != nil {
		return 0, fmt.Errorf("no HTTP response: %w", err)
	}
	line := string(buf[:n])
	if !strings.HasPrefix(line, "HTTP/1.1 ") {
		return 0, fmt.Errorf("not an HTTP response: %q", line)
	}
	return strconv.Atoi(line[9:12])
}

// dial connects to the capture listener as a connection redirected from
// dst, as the workload ns/sa over mesh mTLS (plaintext when ns is "").
func (h *inbound) dial(t *testing.T, dst netip.AddrPort, ns, sa string) (net.Conn, error) {
	t.Helper()
	h.dst <- dst
	conn, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		<-h.dst
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if ns != "" {
		cert, _, _, err := h.ca.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) {
			return h.ca.SignWorkload(pub, ca.SPIFFEID(ns, sa), time.Hour)
		})
		if err != nil {
			t.Fatal(err)
		}
		// The server's identity is not under test here; the client's is.
		tc := tls.Client(conn, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, NextProtos: []string{"istio-peer-exchange", "istio", "http/1.1"}}) //nolint:gosec
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mTLS handshake: %w", err)
		}
		conn = tc
	}
	return conn, nil
}

// pushContext is pilot's view of w as it is now.
func pushContext(w *pilottest.World) *xds.PushContext {
	return xds.NewPushContext(model.Build(1, w.Input()))
}

// redirectEndpoints replaces the endpoints of the clusters named in to with one loopback address each.
func redirectEndpoints(in []types.Resource, to map[string]netip.AddrPort) []types.Resource {
	if len(to) == 0 {
		return in
	}
	var out []types.Resource
	seen := map[string]bool{}
	for _, r := range in {
		cla := r.(*endpointv3.ClusterLoadAssignment)
		if _, ok := to[cla.GetClusterName()]; ok {
			seen[cla.GetClusterName()] = true
			continue
		}
		out = append(out, r)
	}
	for name, ap := range to {
		out = append(out, &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: ap.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())}}}}}},
		}}}}})
	}
	return out
}
