package sampleapp

import (
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// GRPCHealthService is the service name the app reports SERVING for, besides
// the server as a whole (""), so gRPC probes can name a service.
const GRPCHealthService = "mesh.sample"

// ServeGRPCHealth serves grpc.health.v1 on l until it fails: what a
// Kubernetes gRPC probe calls. Any other service name is unknown (NOT_FOUND).
func ServeGRPCHealth(l net.Listener) error {
	s := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus(GRPCHealthService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, h)
	return s.Serve(l)
}
