package pilotinterop

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/telemetry"
	"mesh.dev/mesh/internal/proxy/tracing"
)

// zipkinSpan is a Zipkin v2 JSON span, the fields the tests read.
type zipkinSpan struct {
	TraceID       string                       `json:"traceId"`
	ID            string                       `json:"id"`
	ParentID      string                       `json:"parentId"`
	Kind          string                       `json:"kind"`
	Name          string                       `json:"name"`
	LocalEndpoint struct{ ServiceName string } `json:"localEndpoint"`
	Tags          map[string]string            `json:"tags"`
}

// zipkinReceiver is a Zipkin collector on loopback: a real HTTP server
// taking POST /api/v2/spans, keeping the spans and the Host they came with.
type zipkinReceiver struct {
	mu    sync.Mutex
	spans []zipkinSpan
	hosts map[string]bool
	bad   []string // what was wrong with a request
}

func startZipkin(t *testing.T) (*zipkinReceiver, netip.AddrPort) {
	t.Helper()
	z := &zipkinReceiver{hosts: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var spans []zipkinSpan
		err := json.NewDecoder(r.Body).Decode(&spans)
		z.mu.Lock()
		defer z.mu.Unlock()
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/api/v2/spans":
			z.bad = append(z.bad, r.Method+" "+r.URL.Path)
		case r.Header.Get("Content-Type") != "application/json":
			z.bad = append(z.bad, "content type "+r.Header.Get("Content-Type"))
		case err != nil:
			z.bad = append(z.bad, "body: "+err.Error())
		}
		z.hosts[r.Host] = true
		z.spans = append(z.spans, spans...)
		w.WriteHeader(http.StatusAccepted)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return z, netip.MustParseAddrPort(ln.Addr().String())
}

const zipkinCollector = "outbound|9411||zipkin.observability.svc.cluster.local"

// zipkinSidecars starts productpage's and reviews' sidecars, Deployments'
// pods with the injector's node metadata, with a zipkin provider as the
// mesh's default tracing provider and every request sampled; the
// collector cluster's endpoints are endpointOverride's.
func zipkinSidecars(t *testing.T) *outbound {
	t.Helper()
	w, _ := world(t)
	mc, err := telemetry.ParseMesh([]byte(`
extensionProviders:
- name: zipkin
  zipkin: {service: zipkin.observability.svc.cluster.local, port: 9411, maxTagLength: 40}
defaultProviders: {tracing: [zipkin]}
defaultConfig: {tracing: {sampling: 100}}
`), "mesh")
	if err != nil {
		t.Fatal(err)
	}
	w.In.Mesh = mc
	w.AddNamespace("observability", nil)
	if err := w.AddYAML([]byte(`apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: observability}
spec:
  selector: {app: zipkin}
  ports: [{name: http-query, port: 9411}]
---
apiVersion: v1
kind: Pod
metadata: {name: zipkin-0, namespace: observability, labels: {app: zipkin}}
spec: {containers: [{name: zipkin, image: zipkin}]}
status: {podIP: 198.18.99.2, phase: Running}
`)); err != nil {
		t.Fatal(err)
	}
	injectAsDeployment(t, w, "productpage-v1", "productpage-v1")
	injectAsDeployment(t, w, "reviews-v1", "reviews-v1")
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
	return startOutbound(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"), authority, "reviews.default.svc.cluster.local:9080", server)
}

// TestZipkinTraceThroughTwoSidecars: with a zipkin provider (pilot's
// config over real ADS), one request through productpage's and reviews'
// sidecars reaches a real Zipkin HTTP collector on loopback as Zipkin v2
// JSON: one trace of a CLIENT span and its child SERVER span, each under
// its workload's service, with the provider's maxTagLength applied.
func TestZipkinTraceThroughTwoSidecars(t *testing.T) {
	recv, addr := startZipkin(t)
	endpointOverride[zipkinCollector] = addr
	t.Cleanup(func() { delete(endpointOverride, zipkinCollector) })
	client := zipkinSidecars(t)
	sentBefore := tracing.ZipkinSent.Load()
	const path = "/reviews/1?a-query-long-enough-to-be-cut=1"
	if status, body := get(t, client.addr, "reviews:9080", path); status != 200 {
		t.Fatalf("through the sidecars: %d %q", status, body)
	}

	var spans []zipkinSpan
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tracing.Flush(ctx)
		cancel()
		recv.mu.Lock()
		spans = append(spans[:0], recv.spans...)
		recv.mu.Unlock()
		if len(spans) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	recv.mu.Lock()
	bad, hosts := recv.bad, recv.hosts
	recv.mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("collector requests not as Zipkin's API takes them: %v", bad)
	}
	if len(spans) != 2 {
		t.Fatalf("collector got %d spans, want 2 (client and server sidecar); dropped %d (%s)", len(spans), tracing.ZipkinDropped.Load(), tracing.LastError())
	}
	if !hosts["zipkin.observability.svc.cluster.local"] {
		t.Errorf("collector requests' Host %v, want the provider's service", hosts)
	}
	var cl, sv *zipkinSpan
	for i := range spans {
		switch spans[i].Kind {
		case "CLIENT":
			cl = &spans[i]
		case "SERVER":
			sv = &spans[i]
		}
	}
	if cl == nil || sv == nil {
		t.Fatalf("want one CLIENT and one SERVER span, got %+v", spans)
	}
	if cl.TraceID != sv.TraceID || len(cl.TraceID) != 32 {
		t.Errorf("trace ids client %q, server %q: want one 128-bit trace", cl.TraceID, sv.TraceID)
	}
	if sv.ParentID != cl.ID || cl.ID == "" {
		t.Errorf("server span's parent %q, want the client span %q", sv.ParentID, cl.ID)
	}
	if cl.LocalEndpoint.ServiceName != "productpage.default" || sv.LocalEndpoint.ServiceName != "reviews.default" {
		t.Errorf("service names client %q, server %q; want productpage.default, reviews.default", cl.LocalEndpoint.ServiceName, sv.LocalEndpoint.ServiceName)
	}
	if cl.Name != "reviews.default.svc.cluster.local:9080/*" {
		t.Errorf("client span name %q", cl.Name)
	}
	for _, s := range []*zipkinSpan{cl, sv} {
		if s.Tags["http.method"] != "GET" || s.Tags["http.status_code"] != "200" {
			t.Errorf("%s span tags %v: want http.method GET, http.status_code 200", s.Kind, s.Tags)
		}
		if u := s.Tags["http.url"]; len(u) != 40 {
			t.Errorf("%s span http.url %q (%d long): want it cut to maxTagLength 40", s.Kind, u, len(u))
		}
	}
	if got := tracing.ZipkinSent.Load() - sentBefore; got < 2 {
		t.Errorf("tracing.zipkin.spans_sent grew by %d, want 2", got)
	}
}

// TestFailingZipkinCollectorNeverBreaksTraffic: a collector that accepts
// connections and never answers. Requests through the sidecars all
// succeed while the exports hang; the spans are dropped and counted when
// the exports time out, not retried in line or queued without bound.
func TestFailingZipkinCollectorNeverBreaksTraffic(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	endpointOverride[zipkinCollector] = netip.MustParseAddrPort(ln.Addr().String())
	t.Cleanup(func() { delete(endpointOverride, zipkinCollector) })
	client := zipkinSidecars(t)
	before := tracing.ZipkinDropped.Load()
	for i := 0; i < 20; i++ {
		if status, body := get(t, client.addr, "reviews:9080", "/reviews/1"); status != 200 {
			t.Fatalf("request %d with the collector hanging: %d %q", i, status, body)
		}
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		tracing.Flush(ctx)
		cancel()
		got := tracing.ZipkinDropped.Load() - before
		if got >= 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans counted as dropped, want the 40 of 20 requests through two sidecars (last error %q)", got, tracing.LastError())
		}
	}
}
