package pilotinterop

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"mesh.dev/mesh/internal/pilot/ca"
)

// grpcApp serves grpc.health.v1 with "reviews" SERVING: a Check of it is
// answered OK with a message and the status in trailers, a Check of an
// unknown service NOT_FOUND in a trailers-only response (the status in
// the response headers, no body), as grpc-go answers an error before any
// message.
func grpcApp(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("reviews", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, h)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestGRPCStatusThroughTwoSidecars: a real gRPC client calls a real gRPC
// server through both pilot-configured sidecars (real ADS, mesh mTLS, the
// Service's port named grpc): two calls answered OK (grpc-status in
// trailers) and one NOT_FOUND (trailers-only) reach the client with their
// codes, and both proxies count them in istio_requests_total with
// request_protocol grpc, response_code 200 and grpc_response_status 0 and 5.
func TestGRPCStatusThroughTwoSidecars(t *testing.T) {
	w, _ := world(t)
	if err := w.AddYAML([]byte(`apiVersion: v1
kind: Service
metadata: {name: reviews-grpc, namespace: default}
spec:
  selector: {app: reviews}
  clusterIP: 198.19.0.81
  ports: [{name: grpc, port: 9090}]
`)); err != nil {
		t.Fatal(err)
	}
	client := injectAsDeployment(t, w, "productpage-v1", "productpage-v1")
	injectAsDeployment(t, w, "reviews-v1", "reviews-v1")
	pc := pushContext(w)
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server := startInboundTo(t, w, pc, "reviews-v1", authority, grpcApp(t))
	go func() {
		for {
			select {
			case server.dst <- netip.AddrPortFrom(server.podIP, 9090):
			case <-t.Context().Done():
				return
			}
		}
	}()
	out := startOutbound(t, pc, client, authority, "reviews-grpc.default.svc.cluster.local:9090", server)
	conn, err := grpc.NewClient(out.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("reviews-grpc:9090"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for _, c := range []struct {
		service string
		want    codes.Code
	}{{"reviews", codes.OK}, {"reviews", codes.OK}, {"nope", codes.NotFound}} {
		var trailer metadata.MD
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: c.service}, grpc.Trailer(&trailer))
		cancel()
		if got := status.Code(err); got != c.want {
			t.Fatalf("Check(%q) through the sidecars: %v, want %v", c.service, err, c.want)
		}
		if c.want == codes.OK && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check(%q): %v", c.service, resp)
		}
	}
	for _, p := range []struct {
		admin, reporter string
	}{{out.proxy.AdminAddr(), "source"}, {server.proxy.AdminAddr(), "destination"}} {
		for code, n := range map[string]string{"0": "2", "5": "1"} {
			series(t, p.admin, "istio_requests_total", map[string]string{"reporter": p.reporter, "request_protocol": "grpc",
				"response_code": "200", "grpc_response_status": code, "source_workload": "productpage-v1",
				"destination_workload": "reviews-v1", "destination_service": "reviews-grpc.default.svc.cluster.local", "__value__": n})
		}
	}
}
