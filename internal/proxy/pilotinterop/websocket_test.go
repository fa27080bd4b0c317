package pilotinterop

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 fixes SHA-1 for the accept key
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/agent"
)

// wsGUID is RFC 6455's fixed key suffix for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID)) //nolint:gosec
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEchoApp is a WebSocket server on loopback (RFC 6455 handshake and
// frames, by hand): every text message comes back as "echo: <message>".
// A plain request gets 426, so a test sees whether the upgrade arrived.
func wsEchoApp(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-WebSocket-Key")
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
			w.WriteHeader(http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(key))
		brw.Flush()
		for {
			op, msg, err := wsRead(brw.Reader)
			if err != nil || op == 0x8 { // close
				return
			}
			if err := wsWrite(conn, op, append([]byte("echo: "), msg...), false); err != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String())
}

// wsWrite writes one final frame; a client masks, a server does not.
func wsWrite(w io.Writer, op byte, payload []byte, mask bool) error {
	hdr := []byte{0x80 | op, 0}
	switch n := len(payload); {
	case n < 126:
		hdr[1] = byte(n)
	case n < 1<<16:
		hdr[1] = 126
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr[1] = 127
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	body := payload
	if mask {
		hdr[1] |= 0x80
		var k [4]byte
		rand.Read(k[:])
		hdr = append(hdr, k[:]...)
		body = make([]byte, len(payload))
		for i := range payload {
			body[i] = payload[i] ^ k[i%4]
		}
	}
	_, err := w.Write(append(hdr, body...))
	return err
}

// wsRead reads one unfragmented frame and unmasks it.
func wsRead(r *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 {
		return 0, nil, errors.New("fragmented frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, errors.New("frame too large")
	}
	var k [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, k[:]); err != nil {
			return 0, nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range p {
			p[i] ^= k[i%4]
		}
	}
	return h[0] & 0x0f, p, nil
}

// outbound is a client pod's sidecar as pilot configures it: its 15001
// capture listener on loopback, every connection it accepts looking
// redirected to dst, and its endpoints of the server's service sent to the
// server sidecar's capture listener on loopback (pod IPs are unreachable here).
type outbound struct {
	addr  string
	dst   netip.AddrPort
	proxy *agent.Proxy
}

func startOutbound(t *testing.T, pc *xds.PushContext, node string, authority *ca.Authority, service string, server *inbound) *outbound {
	t.Helper()
	p, err := model.ParseNodeID(node)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pc.Generate(p, &ca.SecretCache{CA: authority, TTL: time.Hour})
	if err != nil {
		t.Fatalf("pilot generate for %s: %v", node, err)
	}
	o := &outbound{}
	var listeners []types.Resource
	for _, res := range r.Items(resourcev3.ListenerType) {
		l := res.(*listenerv3.Listener)
		switch l.GetName() {
		case xds.VirtualInbound: // this side only sends
			continue
		case xds.VirtualOutbound:
			l = onLoopback(t, []types.Resource{l})[0].(*listenerv3.Listener)
			sa := l.GetAddress().GetSocketAddress()
			o.addr = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
		}
		listeners = append(listeners, l) // the per-port listeners bind nothing
	}
	host, portStr, _ := strings.Cut(service, ":")
	port, _ := strconv.Atoi(portStr)
	clusterName := fmt.Sprintf("outbound|%d||%s", port, host)
	serverAddr := netip.MustParseAddrPort(server.addr)
	var endpoints []types.Resource
	found := false
	for _, res := range r.Items(resourcev3.EndpointType) {
		cla := res.(*endpointv3.ClusterLoadAssignment)
		if cla.GetClusterName() == clusterName {
			found = true
			cla = proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
			for _, le := range cla.Endpoints {
				for _, lb := range le.LbEndpoints {
					lb.GetEndpoint().Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: serverAddr.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(serverAddr.Port())}}}}
				}
			}
		}
		endpoints = append(endpoints, cla)
	}
	if !found {
		t.Fatalf("pilot sent %s no endpoints for %s", node, clusterName)
	}
	ads := startADS(t)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  r.Items(resourcev3.ClusterType),
		resourcev3.EndpointType: overrideEndpoints(endpoints),
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
	// A ClusterIP of the service range; the per-port listener matches on the port.
	o.dst = netip.AddrPortFrom(netip.MustParseAddr("198.19.0.80"), uint16(port))
	px, err := agent.New(agent.Options{XDSAddress: ads.addr, NodeID: node, AdminAddress: "127.0.0.1:0", Peer: nodePeers[node],
		XDSBackoff:  [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond},
		OriginalDst: func(net.Conn) (netip.AddrPort, bool) { return o.dst, true }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := px.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); px.Close() })
	ads.waitACK(t, resourcev3.ListenerType, resourcev3.RouteType, resourcev3.SecretType, resourcev3.EndpointType)
	o.proxy = px
	return o
}

// TestWebSocketThroughTwoSidecars: an app's WebSocket to another meshed
// service goes through its own sidecar and the server's, over the mesh mTLS
// pilot sets up by default, and messages flow both ways after the 101, as in
// Istio where upgrades need no configuration. Before pilot sent
// upgrade_configs the client's sidecar answered the upgrade with 403.
func TestWebSocketThroughTwoSidecars(t *testing.T) {
	for _, mode := range []string{"PERMISSIVE", "STRICT"} {
		t.Run(mode, func(t *testing.T) {
			w, _ := world(t)
			if err := w.AddYAML(fmt.Appendf(nil, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: %s}}
`, mode)); err != nil {
				t.Fatal(err)
			}
			pc := pushContext(w)
			authority, err := ca.NewSelfSigned("mesh", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			server := startInboundTo(t, w, pc, "reviews-v1", authority, wsEchoApp(t))
			go func() { // the server sidecar sees every connection as one to reviews-v1:9080
				for {
					select {
					case server.dst <- netip.AddrPortFrom(server.podIP, 9080):
					case <-t.Context().Done():
						return
					}
				}
			}()
			client := startOutbound(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"), authority, "reviews.default.svc.cluster.local:9080", server)

			conn, err := net.DialTimeout("tcp", client.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			var k [16]byte
			rand.Read(k[:])
			key := base64.StdEncoding.EncodeToString(k[:])
			fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: reviews:9080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("upgrade through the sidecars: %v", err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("upgrade through the sidecars: %s %q; want 101", resp.Status, body)
			}
			if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept(key) {
				t.Errorf("Sec-WebSocket-Accept %q, want %q (the app's handshake did not come through)", got, wsAccept(key))
			}
			for _, msg := range []string{"hello", strings.Repeat("x", 70000), "again"} {
				if err := wsWrite(conn, 0x1, []byte(msg), true); err != nil {
					t.Fatal(err)
				}
				op, got, err := wsRead(br)
				if err != nil || op != 0x1 || string(got) != "echo: "+msg {
					t.Fatalf("sent %d bytes, got opcode %d, %d bytes %.40q (%v); want the echo", len(msg), op, len(got), got, err)
				}
			}
			wsWrite(conn, 0x8, nil, true)
		})
	}
}
