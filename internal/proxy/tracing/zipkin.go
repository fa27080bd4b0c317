package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	"go.opentelemetry.io/otel/exporters/zipkin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"mesh.dev/mesh/internal/proxy/protofields"
)

// ZipkinType is Envoy's Zipkin tracer config, which Compile exports
// Zipkin v2 JSON spans for.
const ZipkinType = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"

// zipkinTracer compiles an envoy.tracers.zipkin config: spans are POSTed
// as Zipkin v2 JSON to collector_endpoint on a host of collector_cluster
// (through its transport socket, never by DNS), with collector_hostname
// as the Host, in batches from the bounded queue every exporter has.
func zipkinTracer(zc *tracev3.ZipkinConfig, field string, owner any, service string, dial Dialer) (trace.Tracer, error) {
	if err := protofields.Check(zc, field, "collector_cluster", "collector_endpoint", "trace_id_128bit", "shared_span_context",
		"collector_endpoint_version", "collector_hostname", "trace_context_option"); err != nil {
		return nil, err
	}
	cluster, endpoint := zc.GetCollectorCluster(), zc.GetCollectorEndpoint()
	switch {
	case cluster == "":
		return nil, fmt.Errorf("%s.collector_cluster: the Zipkin collector's cluster is required", field)
	case !strings.HasPrefix(endpoint, "/"):
		return nil, fmt.Errorf("%s.collector_endpoint: %q: expected the collector's path, e.g. /api/v2/spans", field, endpoint)
	case zc.GetCollectorEndpointVersion() != tracev3.ZipkinConfig_HTTP_JSON:
		return nil, fmt.Errorf("%s.collector_endpoint_version: %s is not supported (supported: HTTP_JSON, Zipkin v2 JSON)", field, zc.GetCollectorEndpointVersion())
	case zc.GetSharedSpanContext() == nil || zc.GetSharedSpanContext().GetValue():
		// Envoy's default (true) shares one span between a client and the
		// server it calls; mesh-proxy makes a span per proxy hop, as Istio
		// configures Envoy (false).
		return nil, fmt.Errorf("%s.shared_span_context: only false is supported (a span per proxy hop, as Istio sets it)", field)
	}
	host := zc.GetCollectorHostname()
	if host == "" {
		host = cluster
	}
	var ids sdktrace.IDGenerator
	if !zc.GetTraceId_128Bit() {
		ids = ids64{}
	}
	key := fmt.Sprintf("%p|zipkin|%s|%s|%s|%s|%v", owner, cluster, host, endpoint, service, zc.GetTraceId_128Bit())
	return providerFor(key, service, &ZipkinSent, &ZipkinDropped, ids, func() sdktrace.SpanExporter {
		client := &http.Client{
			Timeout: 5 * time.Second,
			Transport: &http.Transport{
				Proxy: nil,
				// HTTP/1.1 over the cluster's transport socket: a peer sidecar
				// reads a mesh connection with no HTTP protocol agreed so.
				DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, cluster, false) },
				MaxIdleConnsPerHost: 2,
				IdleConnTimeout:     30 * time.Second,
			},
		}
		exp, err := zipkin.New("http://"+host+endpoint, zipkin.WithClient(client), zipkin.WithLogger(log.New(io.Discard, "", 0)))
		if err != nil {
			return failingExporter{err}
		}
		return exp
	}), nil
}

// failingExporter stands for an exporter that could not be made: every
// export fails, so its spans are counted as dropped.
type failingExporter struct{ err error }

func (f failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return f.err }
func (failingExporter) Shutdown(context.Context) error                               { return nil }

// ids64 makes 64-bit trace ids (the high half zero), for a Zipkin config
// with trace_id_128bit false.
type ids64 struct{}

func (ids64) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	var t trace.TraceID
	binary.BigEndian.PutUint64(t[8:], rand.Uint64()|1)
	return t, newSpanID()
}

func (ids64) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() trace.SpanID {
	var s trace.SpanID
	binary.BigEndian.PutUint64(s[:], rand.Uint64()|1)
	return s
}
