package pilotinterop

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/telemetry"
	"mesh.dev/mesh/internal/proxy/tracing"
)

// endpointOverride sends a cluster's endpoints (by cluster name) to a
// loopback address in the harnesses' configs: pod IPs are unreachable here.
var endpointOverride = map[string]netip.AddrPort{}

func overrideEndpoints(in []types.Resource) []types.Resource {
	out := make([]types.Resource, 0, len(in))
	for _, r := range in {
		cla := r.(*endpointv3.ClusterLoadAssignment)
		if to, ok := endpointOverride[cla.GetClusterName()]; ok {
			cla = proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
			for _, le := range cla.Endpoints {
				for _, lb := range le.LbEndpoints {
					lb.GetEndpoint().Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: to.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(to.Port())}}}}
				}
			}
		}
		out = append(out, cla)
	}
	return out
}

// otlpReceiver is an OTLP/gRPC trace collector on loopback keeping what it gets.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	svc   map[string]string // span id → service.name of its resource
}

func (o *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		name := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				name = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				o.spans = append(o.spans, s)
				o.svc[string(s.SpanId)] = name
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func startOTLP(t *testing.T) (*otlpReceiver, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &otlpReceiver{svc: map[string]string{}}
	s := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(s, o)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return o, netip.MustParseAddrPort(ln.Addr().String())
}

// TestTraceThroughTwoSidecars: with an opentelemetry provider as the mesh's
// default tracing provider and every request sampled, one request from
// productpage to reviews through both sidecars (pilot's config over real
// ADS) reaches a real OTLP receiver as one trace of two spans: the client
// sidecar's CLIENT span and, its child, the server sidecar's SERVER span,
// each under its workload's service name, with the Telemetry's custom tag.
func TestTraceThroughTwoSidecars(t *testing.T) {
	recv, addr := startOTLP(t)
	const collector = "outbound|4317||otel-collector.observability.svc.cluster.local"
	endpointOverride[collector] = addr
	t.Cleanup(func() { delete(endpointOverride, collector) })

	client := tracedSidecars(t)
	if status, body := get(t, client.addr, "reviews:9080", "/reviews/1"); status != 200 {
		t.Fatalf("through the sidecars: %d %q", status, body)
	}

	var spans []*tracepb.Span
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		tracing.Flush(ctx)
		cancel()
		recv.mu.Lock()
		spans = append(spans[:0], recv.spans...)
		recv.mu.Unlock()
		if len(spans) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(spans) != 2 {
		t.Fatalf("receiver got %d spans, want 2 (client and server sidecar); dropped %d (%s)", len(spans), tracing.Dropped.Load(), tracing.LastError())
	}
	var cl, sv *tracepb.Span
	for _, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_CLIENT:
			cl = s
		case tracepb.Span_SPAN_KIND_SERVER:
			sv = s
		}
	}
	if cl == nil || sv == nil {
		t.Fatalf("want one CLIENT and one SERVER span, got %v", spans)
	}
	if string(cl.TraceId) != string(sv.TraceId) {
		t.Errorf("two traces: client %x, server %x", cl.TraceId, sv.TraceId)
	}
	if string(sv.ParentSpanId) != string(cl.SpanId) {
		t.Errorf("server span's parent %x, want the client span %x", sv.ParentSpanId, cl.SpanId)
	}
	recv.mu.Lock()
	cs, ss := recv.svc[string(cl.SpanId)], recv.svc[string(sv.SpanId)]
	recv.mu.Unlock()
	if cs != "productpage.default" || ss != "reviews.default" {
		t.Errorf("service names client %q, server %q; want productpage.default, reviews.default", cs, ss)
	}
	if cl.Name != "reviews.default.svc.cluster.local:9080/*" {
		t.Errorf("client span name %q", cl.Name)
	}
	for _, s := range spans {
		attrs := map[string]string{}
		for _, a := range s.Attributes {
			attrs[a.Key] = a.GetValue().GetStringValue()
			if a.Key == "http.status_code" && a.GetValue().GetIntValue() != 200 {
				t.Errorf("%s span status %d", s.Kind, a.GetValue().GetIntValue())
			}
		}
		if attrs["team"] != "bookinfo" || attrs["http.method"] != "GET" {
			t.Errorf("%s span attributes %v: want team=bookinfo (custom tag) and http.method=GET", s.Kind, attrs)
		}
	}
}

// tracedSidecars starts productpage's and reviews' sidecars with an
// opentelemetry provider (the collector cluster's endpoints are
// endpointOverride's), every request sampled, and a mesh-wide custom tag.
func tracedSidecars(t *testing.T) *outbound {
	t.Helper()
	w, _ := world(t)
	mc, err := telemetry.ParseMesh([]byte(`
extensionProviders:
- name: otel
  opentelemetry: {service: otel-collector.observability.svc.cluster.local, port: 4317}
defaultProviders: {tracing: [otel]}
defaultConfig: {tracing: {sampling: 100}}
`), "mesh")
	if err != nil {
		t.Fatal(err)
	}
	w.In.Mesh = mc
	w.AddNamespace("observability", nil)
	if err := w.AddYAML([]byte(`apiVersion: v1
kind: Service
metadata: {name: otel-collector, namespace: observability}
spec:
  selector: {app: otel-collector}
  ports: [{name: grpc-otlp, port: 4317}]
---
# Outside the mesh (no sidecar, so no mesh mTLS to it), as a collector often is.
apiVersion: v1
kind: Pod
metadata: {name: otel-collector-0, namespace: observability, labels: {app: otel-collector}}
spec: {containers: [{name: otel, image: otel}]}
status: {podIP: 198.18.99.1, phase: Running}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: mesh-system}
spec:
  tracing: [{customTags: {team: {literal: {value: bookinfo}}}}]
`)); err != nil {
		t.Fatal(err)
	}
	pc := pushContext(w)
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server := startInboundTo(t, w, pc, "reviews-v1", authority, newApp(t))
	go func() {
		for {
			select {
			case server.dst <- netip.AddrPortFrom(server.podIP, 9080):
			case <-t.Context().Done():
				return
			}
		}
	}()
	client := startOutbound(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"), authority, "reviews.default.svc.cluster.local:9080", server)
	return client
}

// TestFailingCollectorNeverBreaksTraffic: with the collector refusing
// connections, requests through the sidecars still succeed and the spans
// are dropped and counted, not queued without bound or retried in line.
func TestFailingCollectorNeverBreaksTraffic(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close() // nothing listens there now: every export fails
	const collector = "outbound|4317||otel-collector.observability.svc.cluster.local"
	endpointOverride[collector] = closed
	t.Cleanup(func() { delete(endpointOverride, collector) })
	client := tracedSidecars(t)
	before := tracing.Dropped.Load()
	for i := 0; i < 20; i++ {
		if status, body := get(t, client.addr, "reviews:9080", "/reviews/1"); status != 200 {
			t.Fatalf("request %d with the collector down: %d %q", i, status, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tracing.Flush(ctx)
	cancel()
	if got := tracing.Dropped.Load() - before; got < 40 {
		t.Errorf("%d spans counted as dropped, want the 40 of 20 requests through two sidecars (last error %q)", got, tracing.LastError())
	}
}
