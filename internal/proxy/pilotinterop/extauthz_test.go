package pilotinterop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
)

const (
	authzHost     = "authz.default.svc.cluster.local"
	authzHTTPPort = 8000
	authzGRPCPort = 9000
)

// httpAuthz is an authorization service speaking Envoy's HTTP ext_authz
// protocol: user alice (x-user) is allowed and named to the upstream,
// "boom" gets a 500, anyone else a 403 with a reason.
func httpAuthz(t *testing.T) netip.AddrPort {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-User") {
		case "alice":
			w.Header().Set("X-Authz-User", "alice")
			w.Header().Set("X-Not-Forwarded", "1")
		case "boom":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.Header().Set("X-Authz-Reason", "not alice at "+r.URL.Path)
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "denied by authz")
		}
	}))
	t.Cleanup(s.Close)
	return netip.MustParseAddrPort(s.Listener.Addr().String())
}

// grpcAuthz is the same service over envoy.service.auth.v3 Check.
type grpcAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (grpcAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	if h.GetHeaders()["x-user"] == "alice" && h.GetPath() != "" && req.GetAttributes().GetSource().GetPrincipal() != "" {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authz-user", Value: "alice"}}},
		}}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.PermissionDenied)}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
		Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authz-reason", Value: "grpc says no"}}},
		Body:    "denied over grpc",
	}}}, nil
}

func startGRPCAuthz(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, grpcAuthz{})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return netip.MustParseAddrPort(ln.Addr().String())
}

// closedPort is a loopback address nothing listens on: an authorization service that is down.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

// userApp answers with the x-authz-user header it was sent.
func userApp(t *testing.T) netip.AddrPort {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		io.WriteString(rw, "user="+req.Header.Get("X-Authz-User"))
	}))
	t.Cleanup(app.Close)
	return netip.MustParseAddrPort(app.Listener.Addr().String())
}

// authzWorld is Bookinfo plus the authz Service, the mesh config's
// providers and a CUSTOM policy on reviews' /reviews/* paths.
func authzWorld(t *testing.T, provider string, failOpen bool) *pilottest.World {
	t.Helper()
	w, _ := world(t)
	w.In.Mesh = &meshapi.MeshConfig{ExtensionProviders: []*meshapi.MeshConfig_ExtensionProvider{
		{Name: "http-authz", Provider: &meshapi.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{EnvoyExtAuthzHttp: &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{
			Service: authzHost, Port: authzHTTPPort, FailOpen: failOpen, PathPrefix: "/check",
			IncludeRequestHeadersInCheck: []string{"x-user"}, HeadersToUpstreamOnAllow: []string{"x-authz-*"}, HeadersToDownstreamOnDeny: []string{"x-authz-reason"},
		}}},
		{Name: "grpc-authz", Provider: &meshapi.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
			Service: "default/" + authzHost, Port: authzGRPCPort, FailOpen: failOpen,
		}}},
	}}
	if err := w.AddYAML([]byte(`apiVersion: v1
kind: Service
metadata: {name: authz, namespace: default}
spec:
  selector: {app: authz}
  ports: [{name: http, port: 8000}, {name: grpc, port: 9000}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: CUSTOM
  provider: {name: ` + provider + `}
  rules: [{to: [{operation: {paths: ["/reviews/*"]}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	return w
}

type answer struct {
	code int
	body string
	hdr  http.Header
}

func (h *inbound) ask(t *testing.T, path, user string) answer {
	t.Helper()
	conn, err := h.dial(t, netip.AddrPortFrom(h.podIP, 9080), "default", "bookinfo-productpage")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: reviews:9080\r\nX-User: %s\r\nConnection: close\r\n\r\n", path, user)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, strings.TrimSpace(string(b)), resp.Header}
}

// TestCustomExtAuthz: CUSTOM AuthorizationPolicies through pilot's config
// served to mesh-proxy, against real authorization services on loopback
// speaking Envoy's HTTP and gRPC ext_authz protocols: allowed and denied
// callers, the headers each side is promised, requests the policy does
// not select (never checked), the service down under failOpen false and
// true, and a provider the mesh config does not have (everything denied).
func TestCustomExtAuthz(t *testing.T) {
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	app := userApp(t)
	httpCluster := xds.OutboundClusterName(authzHTTPPort, "", authzHost)
	grpcCluster := xds.OutboundClusterName(authzGRPCPort, "", authzHost)
	up := map[string]netip.AddrPort{httpCluster: httpAuthz(t), grpcCluster: startGRPCAuthz(t)}
	down := map[string]netip.AddrPort{httpCluster: closedPort(t), grpcCluster: closedPort(t)}
	check := func(t *testing.T, h *inbound, path, user string, code int, body string, hdr ...string) {
		t.Helper()
		a := h.ask(t, path, user)
		if a.code != code || body != "" && a.body != body {
			t.Errorf("GET %s as %q: %d %q; want %d %q", path, user, a.code, a.body, code, body)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			if got := a.hdr.Get(hdr[i]); got != hdr[i+1] {
				t.Errorf("GET %s as %q: header %s %q; want %q", path, user, hdr[i], got, hdr[i+1])
			}
		}
	}
	for _, noLean := range []bool{false, true} {
		name := map[bool]string{false: "lean", true: "net/http"}[noLean]
		t.Run("http provider/"+name, func(t *testing.T) {
			w := authzWorld(t, "http-authz", false)
			h := startInboundOpts(t, w, pushContext(w), "reviews-v1", authority, app, inboundOpts{noLean: noLean, endpoints: up})
			check(t, h, "/reviews/1", "alice", 200, "user=alice")
			check(t, h, "/reviews/1", "bob", 403, "denied by authz", "X-Authz-Reason", "not alice at /check/reviews/1")
			check(t, h, "/health", "bob", 200, "user=") // not selected by the CUSTOM rule: never checked
			check(t, h, "/reviews/1", "boom", 403, "")  // a 5xx is an error: statusOnError, fail closed
		})
	}
	t.Run("grpc provider", func(t *testing.T) {
		w := authzWorld(t, "grpc-authz", false)
		h := startInboundOpts(t, w, pushContext(w), "reviews-v1", authority, app, inboundOpts{endpoints: up})
		check(t, h, "/reviews/1", "alice", 200, "user=alice")
		check(t, h, "/reviews/1", "bob", 401, "denied over grpc", "X-Authz-Reason", "grpc says no")
		check(t, h, "/health", "bob", 200, "user=")
	})
	for _, provider := range []string{"http-authz", "grpc-authz"} {
		for _, failOpen := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s down, failOpen %v", provider, failOpen), func(t *testing.T) {
				w := authzWorld(t, provider, failOpen)
				h := startInboundOpts(t, w, pushContext(w), "reviews-v1", authority, app, inboundOpts{endpoints: down})
				want := 403
				if failOpen {
					want = 200
				}
				check(t, h, "/reviews/1", "alice", want, "")
				check(t, h, "/health", "alice", 200, "")
			})
		}
	}
	t.Run("unknown provider", func(t *testing.T) {
		w := authzWorld(t, "no-such-provider", false)
		h := startInboundOpts(t, w, pushContext(w), "reviews-v1", authority, app, inboundOpts{endpoints: up})
		check(t, h, "/reviews/1", "alice", 403, "")
		check(t, h, "/health", "alice", 403, "") // as in Istio: the workload denies everything
	})
}
