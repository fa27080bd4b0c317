package agent

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbaccfg "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// One keep-alive connection carries requests the lean HTTP/1.1 path serves
// and one it hands to net/http (a chunked body); every answer must come back
// whole and in order, and the hand-off must keep the bytes already read.
func TestLeanPathHandsOffMidConnection(t *testing.T) {
	up := startUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s body=%q", r.Method, r.URL.Path, b)
	})
	port := freePort(t)
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}, nil, staticCluster("a", up))
	waitListening(t, port)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// All three requests go out at once: the second arrives while the lean
	// path already holds part of the stream in its buffer.
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+
		"POST /three HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	br := bufio.NewReader(c)
	for _, want := range []string{`GET /one body=""`, `POST /two body="hello"`, `POST /three body="abc"`} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %q: %v", want, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, b, want)
		}
	}
}

// A chunked answer streams through with its framing, and an upstream that
// closes every other connection after answering costs no request.
func TestLeanPathChunkedAndUpstreamCloses(t *testing.T) {
	var n atomic.Int64
	up := startUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.Header().Set("Connection", "close")
		}
		if r.URL.Path == "/stream" {
			io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			return
		}
		io.WriteString(w, "ok")
	})
	port := freePort(t)
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}, nil, staticCluster("a", up))
	resp, body := get(t, url(port, "/stream"))
	if resp.StatusCode != 200 || body != "part1,part2" || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("stream: %d %q transfer-encoding %v", resp.StatusCode, body, resp.TransferEncoding)
	}
	for i := 0; i < 20; i++ {
		resp, body := get(t, url(port, "/x"))
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
}

// An upstream that closes an idle keep-alive connection makes the next
// request over it fail before any answer; the lean path sends it again on a
// fresh connection instead of answering 503.
func TestLeanPathResendsOnStaleUpstreamConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{IdleTimeout: 50 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	up := &upstream{name: "a", addr: ln.Addr().String(), srv: srv}
	port := freePort(t)
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}, nil, staticCluster("a", up))
	for i := 0; i < 5; i++ {
		resp, err := http.Post(url(port, "/p"), "text/plain", strings.NewReader(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fmt.Sprintf("got %d", i) {
			t.Fatalf("request %d after the upstream closed its idle connection: %d %q", i, resp.StatusCode, b)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func waitListening(t *testing.T, port uint32) {
	t.Helper()
	eventually(t, "listener bound", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// On a plaintext listener (served by the lean path) the RBAC filter denies
// by path and method and an empty fault filter, as pilot always configures
// one, lets everything through.
func TestLeanPathRunsRBACAndFaultFilters(t *testing.T) {
	up := startUpstream(t, "a", nil)
	port := freePort(t)
	deny := &rbacv3.RBAC{Rules: &rbaccfg.RBAC{Action: rbaccfg.RBAC_DENY, Policies: map[string]*rbaccfg.Policy{
		"deny-admin-post": {
			Principals: []*rbaccfg.Principal{{Identifier: &rbaccfg.Principal_Any{Any: true}}},
			Permissions: []*rbaccfg.Permission{{Rule: &rbaccfg.Permission_AndRules{AndRules: &rbaccfg.Permission_Set{Rules: []*rbaccfg.Permission{
				{Rule: &rbaccfg.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/admin"}}}}}},
				{Rule: &rbaccfg.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "POST"}}}},
			}}}}},
		}}}}
	filters := []*hcmv3.HttpFilter{
		faultFilter(t, &faultv3.HTTPFault{}),
		{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, deny)}},
	}
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}, filters, staticCluster("a", up))
	waitListening(t, port)
	post := func(path string) (int, string) {
		resp, err := http.Post(url(port, path), "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/admin/users"); code != 403 || body != "RBAC: access denied" {
		t.Errorf("POST /admin/users: %d %q, want 403 from RBAC", code, body)
	}
	if code, body := post("/public"); code != 200 || body != "a" {
		t.Errorf("POST /public: %d %q, want 200 from the upstream", code, body)
	}
	if resp, body := get(t, url(port, "/admin/users")); resp.StatusCode != 200 || body != "a" {
		t.Errorf("GET /admin/users: %d %q, want 200 (only POST is denied)", resp.StatusCode, body)
	}
}

// Over mTLS the lean path serves HTTP/1.1 too, and a request it hands to
// net/http (a chunked body) still carries the client's identity: the
// upstream sees the same X-Forwarded-Client-Cert on every request.
func TestLeanPathOverTLSKeepsThePeerIdentityAcrossHandOff(t *testing.T) {
	up := startUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s xfcc=%s proto=%s body=%q", r.Method, r.URL.Path, r.Header.Get("X-Forwarded-Client-Cert"), r.Header.Get("X-Forwarded-Proto"), b)
	})
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "default", "server")
	port := freePort(t)
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "in", ForwardClientCertDetails: hcmv3.HttpConnectionManager_APPEND_FORWARD,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: "in", VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}}}}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}}}
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	dtc := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates:       []*tlsv3.TlsCertificate{{CertificateChain: inline(certPEM), PrivateKey: inline(keyPEM)}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(ca.pem)}},
	}}
	l := &listenerv3.Listener{Name: "in", Address: sockAddr("127.0.0.1", port), FilterChains: []*listenerv3.FilterChain{{
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, dtc)}},
		Filters:         []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)}}}}}}
	staticProxy(t, []*listenerv3.Listener{l}, staticCluster("a", up))
	waitListening(t, port)
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), ca.clientTLS(t, "default", "client"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+
		"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	id := "URI=spiffe://cluster.local/ns/default/sa/client"
	for _, want := range []string{`GET /one xfcc=` + id + ` proto=https body=""`, `POST /two xfcc=` + id + ` proto=https body="hello"`, `GET /three xfcc=` + id + ` proto=https body=""`} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %q: %v", want, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, b, want)
		}
	}
}

// max_requests_per_connection (in the cluster's HttpProtocolOptions, where
// pilot puts a DestinationRule's maxRequestsPerConnection) retires an
// upstream connection after that many requests.
func TestMaxRequestsPerUpstreamConnection(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]int{}
	up := startUpstream(t, "a", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr]++
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	c := staticCluster("a", up)
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t, &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(2)},
		UpstreamProtocolOptions:   &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{}}},
	})}
	port := freePort(t)
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}, nil, c)
	for i := 0; i < 6; i++ {
		if resp, body := get(t, url(port, "/")); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for addr, n := range conns {
		if n > 2 {
			t.Errorf("upstream connection %s carried %d requests, limit 2", addr, n)
		}
	}
	if len(conns) < 3 {
		t.Errorf("6 requests over %d connections, want at least 3 with a limit of 2", len(conns))
	}
}
