package agent

import (
	"context"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestGRPCStreamsThroughMTLSSidecarPair runs gRPC through the mesh hop a
// call really makes: the caller's outbound listener, HTTP/2 over
// ISTIO_MUTUAL mTLS to an inbound listener, HTTP/2 with prior knowledge to
// the app. Messages of a stream sent seconds apart arrive as they are sent
// (frames the proxy holds to batch its writes must still leave), an error
// status travels back in trailers, a call the client cancels is reset at the
// app, and after the app's GOAWAY (a graceful stop and a new server on the
// same port) calls keep working.
func TestGRPCStreamsThroughMTLSSidecarPair(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appAddr := ln.Addr().String()
	ended := make(chan error, 10) // the app's view of each Watch stream's end
	hs := health.NewServer()
	hs.SetServingStatus("reviews", healthpb.HealthCheckResponse_SERVING)
	newApp := func(ln net.Listener) *grpc.Server {
		gs := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss)
			ended <- ss.Context().Err()
			return err
		}))
		healthpb.RegisterHealthServer(gs, hs)
		go gs.Serve(ln)
		return gs
	}
	app := newApp(ln)
	t.Cleanup(func() { app.Stop() })

	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "default", "sleep")
	cp := startControlPlane(t, "")
	inPort, outPort := freePort(t), freePort(t)
	inHCM := &hcmv3.HttpConnectionManager{StatPrefix: "inbound", RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
		Name: "inbound", VirtualHosts: []*routev3.VirtualHost{{Name: "in", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("app")}}}}}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}}}
	downstreamTLS := &tlsv3.DownstreamTlsContext{CommonTlsContext: commonTLS(), RequireClientCertificate: wrapperspb.Bool(true)}
	inbound := &listenerv3.Listener{Name: "virtualInbound", Address: sockAddr("127.0.0.1", inPort), TrafficDirection: corev3.TrafficDirection_INBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, downstreamTLS)}},
			Filters:         []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, inHCM)}}}}}}
	mesh := h2Cluster(staticCluster("outbound|9090||app", &upstream{addr: "127.0.0.1:" + itoa(inPort)}))
	mesh.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t,
		&tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(spiffeMatch("spiffe://cluster.local/ns/default/sa/sleep")), Sni: "outbound_.9090_._.app.default.svc.cluster.local"})}}
	cp.set(map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {inbound, httpListener(t, "outbound", outPort, "outbound")},
		resourcev3.ClusterType:  {h2Cluster(staticCluster("app", &upstream{addr: appAddr})), mesh},
		resourcev3.RouteType: {&routev3.RouteConfiguration{Name: "outbound", VirtualHosts: []*routev3.VirtualHost{{Name: "o", Domains: []string{"*"},
			Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("outbound|9090||app")}}}}}},
		resourcev3.SecretType: {
			&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}}}}},
			&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: ca.pem}}}}},
		},
	})
	startProxy(t, cp.addr)

	conn, err := grpc.NewClient("127.0.0.1:"+itoa(outPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	check := func(service string) (*healthpb.HealthCheckResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	}
	eventually(t, "a unary call through the pair", func() bool {
		r, err := check("reviews")
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	if _, err := check("unknown"); status.Code(err) != codes.NotFound {
		t.Fatalf("an error status must travel back in trailers: got %v, want NotFound", err)
	}

	// A server stream: each update reaches the client while the stream stays open.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "reviews"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_SERVING} {
		if i == 1 {
			hs.SetServingStatus("reviews", healthpb.HealthCheckResponse_NOT_SERVING)
		} else if i == 2 {
			hs.SetServingStatus("reviews", healthpb.HealthCheckResponse_SERVING)
		}
		m, err := watch.Recv()
		if err != nil || m.GetStatus() != want {
			t.Fatalf("stream message %d: %v %v; want %v", i, m, err, want)
		}
	}
	// The client cancels: the reset crosses both sidecars and ends the app's stream.
	cancel()
	if _, err := watch.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("after cancel: %v, want Canceled", err)
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the app's stream ended without seeing the cancellation")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the app's stream was not reset by the client's cancel")
	}

	// The app goes away gracefully (GOAWAY) and comes back on the same port: calls still work.
	app.GracefulStop()
	ln2, err := net.Listen("tcp", appAddr)
	if err != nil {
		t.Fatal(err)
	}
	app = newApp(ln2)
	eventually(t, "a call after the app's GOAWAY", func() bool {
		r, err := check("reviews")
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	for i := 0; i < 20; i++ {
		if r, err := check("reviews"); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("call %d after the app's restart: %v %v", i, r, err)
		}
	}
}
