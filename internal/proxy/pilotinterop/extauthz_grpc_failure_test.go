package pilotinterop

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/xds"
)

// failingAuthz is grpcAuthz on a fixed loopback port that the test can
// make fail: answer a gRPC error, hang past the check's timeout, answer
// a CheckResponse whose status is not OK, or stop and start again.
type failingAuthz struct {
	addr netip.AddrPort
	mu   sync.Mutex
	mode string // "", "error", "hang", "not-ok"
	srv  *grpc.Server
	seen chan<- string // when set, gets each check's source address (dropped when full)
}

func (a *failingAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.mu.Lock()
	mode := a.mode
	a.mu.Unlock()
	if a.seen != nil {
		sa := req.GetAttributes().GetSource().GetAddress().GetSocketAddress()
		select {
		case a.seen <- net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue())):
		default:
		}
	}
	switch mode {
	case "error":
		return nil, grpcstatus.Error(codes.Internal, "the policy engine is broken")
	case "hang":
		<-ctx.Done()
		return nil, ctx.Err()
	case "not-ok":
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.Unavailable)}}, nil
	}
	return grpcAuthz{}.Check(ctx, req)
}

func (a *failingAuthz) set(mode string) {
	a.mu.Lock()
	a.mode = mode
	a.mu.Unlock()
}

// start serves on a.addr (any free port the first time).
func (a *failingAuthz) start(t *testing.T) {
	t.Helper()
	addr := "127.0.0.1:0"
	if a.addr.IsValid() {
		addr = a.addr.String()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("authz service: %v", err)
	}
	a.addr = netip.MustParseAddrPort(ln.Addr().String())
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, &authzShim{a})
	go g.Serve(ln)
	a.mu.Lock()
	a.srv = g
	a.mu.Unlock()
}

func (a *failingAuthz) stop() {
	a.mu.Lock()
	g := a.srv
	a.srv = nil
	a.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

type authzShim struct{ *failingAuthz }

func (s *authzShim) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.failingAuthz.Check(ctx, req)
}

// TestCustomExtAuthzGRPCFailOpen: a CUSTOM policy whose provider is
// envoyExtAuthzGrpc, through pilot's config served to mesh-proxy, against
// a real gRPC authorization service on loopback that fails in each way it
// can while the proxy runs: a gRPC error, a hang past the provider's
// timeout, the service stopped. With failOpen false each failure refuses
// the request with statusOnError (403 when unset, as in Istio and Envoy);
// with failOpen true it lets the request through, even a caller the
// service would deny. A CheckResponse whose status is not OK is the
// service's decision, not a failure: denied whatever failOpen says. When
// the service comes back, the next request is checked again, however long
// it was down.
func TestCustomExtAuthzGRPCFailOpen(t *testing.T) {
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	app := userApp(t)
	grpcCluster := xds.OutboundClusterName(authzGRPCPort, "", authzHost)
	httpCluster := xds.OutboundClusterName(authzHTTPPort, "", authzHost)
	for _, tc := range []struct {
		failOpen      bool
		statusOnError string
		onError       int // the status a failed check gives alice and bob
	}{
		{false, "", 403},
		{false, "503", 503},
		{true, "", 200},
	} {
		t.Run(fmt.Sprintf("failOpen %v statusOnError %q", tc.failOpen, tc.statusOnError), func(t *testing.T) {
			t.Parallel()
			a := &failingAuthz{}
			a.start(t)
			t.Cleanup(a.stop)
			w := authzWorld(t, "grpc-authz", tc.failOpen)
			for _, p := range w.In.Mesh.GetExtensionProviders() {
				if g := p.GetEnvoyExtAuthzGrpc(); g != nil {
					g.Timeout, g.StatusOnError = durationpb.New(2*time.Second), tc.statusOnError
				}
			}
			h := startInboundOpts(t, w, pushContext(w), "reviews-v1", authority, app,
				inboundOpts{endpoints: map[string]netip.AddrPort{grpcCluster: a.addr, httpCluster: closedPort(t)}})
			expect := func(step, user string, code int) {
				t.Helper()
				if got := h.ask(t, "/reviews/1", user); got.code != code {
					t.Errorf("%s: GET /reviews/1 as %s: %d %q; want %d", step, user, got.code, got.body, code)
				}
			}
			upAgain := func(step string) {
				t.Helper()
				expect(step, "alice", 200)
				expect(step, "bob", 401)
			}
			upAgain("service up")

			a.set("error")
			expect("gRPC error", "alice", tc.onError)
			expect("gRPC error", "bob", tc.onError)
			a.set("hang")
			expect("hang past the timeout", "bob", tc.onError)
			a.set("not-ok")
			expect("CheckResponse status UNAVAILABLE", "alice", 403)
			a.set("")
			upAgain("service answering again")

			a.stop()
			// Long enough down for a gRPC client's reconnect backoff to grow
			// past what the next step allows, were the proxy to keep one.
			for i := 0; i < 12; i++ {
				expect(fmt.Sprintf("service stopped (request %d)", i+1), "bob", tc.onError)
				time.Sleep(300 * time.Millisecond)
			}
			if got := h.ask(t, "/health", "bob"); got.code != 200 {
				t.Errorf("service stopped: /health (no CUSTOM rule) %d; want 200", got.code)
			}
			a.start(t)
			upAgain("service started again")
		})
	}
}

// TestCustomThenDenyThenAllow: Istio's order on one workload, CUSTOM, then
// DENY, then ALLOW. The authorization service is asked first, and its
// denial is what a caller gets even where a DENY would also refuse or no
// ALLOW admits; a request it allows is then refused by a DENY rule or by
// the ALLOW policy not naming the caller.
func TestCustomThenDenyThenAllow(t *testing.T) {
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 16)
	a := &failingAuthz{seen: seen}
	a.start(t)
	t.Cleanup(a.stop)
	w := authzWorld(t, "grpc-authz", false)
	if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-second-review, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/reviews/2"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: productpage-only, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	h := startInboundOpts(t, w, pushContext(w), "reviews-v1", authority, userApp(t),
		inboundOpts{endpoints: map[string]netip.AddrPort{xds.OutboundClusterName(authzGRPCPort, "", authzHost): a.addr}})
	for _, tc := range []struct {
		sa, path, user string
		code           int
	}{
		{"bookinfo-productpage", "/reviews/1", "alice", 200}, // every stage passes
		{"bookinfo-productpage", "/reviews/2", "alice", 403}, // allowed by the service, then DENY
		{"bookinfo-productpage", "/reviews/2", "bob", 401},   // the service's denial comes first
		{"bookinfo-ratings", "/reviews/1", "alice", 403},     // allowed by the service, then no ALLOW names ratings
		{"bookinfo-ratings", "/reviews/1", "bob", 401},       // the service's denial comes first
	} {
		for len(seen) > 0 {
			<-seen
		}
		conn, err := h.dial(t, netip.AddrPortFrom(h.podIP, 9080), "default", tc.sa)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: reviews:9080\r\nX-User: %s\r\nConnection: close\r\n\r\n", tc.path, tc.user)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil {
			t.Fatalf("%s as %s/%s: %v", tc.path, tc.sa, tc.user, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s from %s as %s: %d; want %d", tc.path, tc.sa, tc.user, resp.StatusCode, tc.code)
		}
		if len(seen) == 0 {
			t.Errorf("GET %s from %s as %s: the authorization service was not asked; CUSTOM comes first", tc.path, tc.sa, tc.user)
		}
	}
}
