package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func h2Cluster(c *clusterv3.Cluster) *clusterv3.Cluster {
	c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{} //nolint:staticcheck // the field Istio and many control planes still send
	return c
}

func TestH2CAndGRPCThroughProxy(t *testing.T) {
	// A gRPC upstream (HTTP/2 prior knowledge) with the standard health service.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("reviews", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	grpcUp := &upstream{addr: ln.Addr().String()}
	// An HTTP upstream reporting the protocol it was spoken to in.
	proto := startUpstream(t, "proto", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	port := freePort(t)
	one(t, port, []*routev3.Route{
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Grpc: &routev3.RouteMatch_GrpcRouteMatchOptions{}}, Action: routeTo("grpc")},
		{Match: prefix("/"), Action: routeTo("proto")},
	}, nil, h2Cluster(staticCluster("grpc", grpcUp)), staticCluster("proto", proto))

	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var trailer metadata.MD
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "reviews"}, grpc.Trailer(&trailer))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health check through the proxy: %v %v", resp, err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("a gRPC error status must travel back in trailers; got %v", err)
	}
	// h2c with prior knowledge from the client; the upstream is HTTP/1.1.
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: p}}
	r, err := h2c.Get(url(port, "/"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.Proto != "HTTP/2.0" || string(b) != "HTTP/1.1" {
		t.Fatalf("h2c downstream: spoke %s, upstream saw %q; want HTTP/2.0 down and HTTP/1.1 up", r.Proto, b)
	}
}

// TestWebSocketUpgrade: an Upgrade the connection manager enables
// (websocket, as pilot sends) is carried both ways after the 101; a route's
// upgrade_configs override the manager's per type (Envoy's precedence), and
// an upgrade nothing enables is refused with 403 before the app sees it.
func TestWebSocketUpgrade(t *testing.T) {
	upgrades := make(chan string, 10) // what reached the app
	echo := startUpstream(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		upgrades <- r.Header.Get("Upgrade")
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", r.Header.Get("Upgrade"))
		brw.Flush()
		io.Copy(conn, brw) // echo frames back
	})
	upgradeRoute := func(path, typ string, on bool) *routev3.Route {
		return &routev3.Route{Match: prefix(path), Action: action("ws", func(a *routev3.RouteAction) {
			a.UpgradeConfigs = []*routev3.RouteAction_UpgradeConfig{{UpgradeType: typ, Enabled: wrapperspb.Bool(on)}}
		})}
	}
	port := freePort(t)
	one(t, port, []*routev3.Route{
		upgradeRoute("/off", "websocket", false),
		upgradeRoute("/spdy", "SPDY/3.1", true),
		{Match: prefix("/"), Action: routeTo("ws")},
	}, nil, staticCluster("ws", echo))
	cases := []struct {
		path, upgrade string
		want          int
	}{
		{"/chat", "websocket", 101},
		{"/chat", "WebSocket", 101},
		{"/off", "websocket", 403},
		{"/spdy", "spdy/3.1", 101},
		{"/chat", "spdy/3.1", 403},
	}
	for _, c := range cases {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: chat\r\nUpgrade: %s\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", c.path, c.upgrade)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != c.want {
			t.Fatalf("Upgrade: %s on %s: %v %v; want %d", c.upgrade, c.path, resp, err, c.want)
		}
		if c.want != 101 {
			select {
			case u := <-upgrades:
				t.Errorf("Upgrade: %s on %s was refused but reached the app (%q)", c.upgrade, c.path, u)
			default:
			}
			conn.Close()
			continue
		}
		if u := <-upgrades; !strings.EqualFold(u, c.upgrade) {
			t.Errorf("the app saw Upgrade %q, want %q", u, c.upgrade)
		}
		for _, msg := range []string{"hello", "again"} {
			conn.Write([]byte(msg))
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
				t.Fatalf("after the %s upgrade sent %q got %q (%v)", c.upgrade, msg, got, err)
			}
		}
		conn.Close()
	}
}

func TestTCPProxy(t *testing.T) {
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
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	port := freePort(t)
	tp := &tcpv3.TcpProxy{StatPrefix: "echo", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "echo"}}
	l := &listenerv3.Listener{Name: "tcp", Address: sockAddr("127.0.0.1", port), FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tp)}}}}}}
	staticProxy(t, []*listenerv3.Listener{l}, staticCluster("echo", &upstream{addr: ln.Addr().String()}))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	payload := strings.Repeat("tcp-bytes-", 10000)
	go c.Write([]byte(payload))
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != payload {
		t.Fatalf("echo through tcp_proxy: %v, %d bytes", err, len(got))
	}
}

var _ = tls.VersionTLS13
