package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type netConn = net.Conn

// Counters of the span export, for the proxy's stats.
var (
	Exported atomic.Int64 // OTLP spans the collector accepted
	Dropped  atomic.Int64 // OTLP spans dropped: the queue was full or the export failed

	ZipkinSent    atomic.Int64 // Zipkin spans the collector accepted
	ZipkinDropped atomic.Int64 // Zipkin spans dropped: the queue was full or the export failed

	lastErr atomic.Value // string: why the last export failed
)

// LastError is why the last failed export failed ("" when none has).
func LastError() string { s, _ := lastErr.Load().(string); return s }

// QueueSize bounds the spans waiting for export.
const QueueSize = 2048

var (
	providersMu sync.Mutex
	providers   = map[string]*sdktrace.TracerProvider{} // by owner, cluster, service name
)

// tracerFor returns the tracer exporting to a cluster under a service
// name, shared by every HCM naming the same ones.
func tracerFor(owner any, cluster, authority, service string, dial Dialer) trace.Tracer {
	key := fmt.Sprintf("%p|otlp|%s|%s", owner, cluster, service)
	return providerFor(key, service, &Exported, &Dropped, nil, func() sdktrace.SpanExporter {
		// The collector is reached through its cluster's hosts, never by DNS:
		// the passthrough target hands the dialer the authority unresolved.
		conn, _ := grpc.NewClient("passthrough:///"+authority, // lazy: connects on the first export
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx, cluster, true) }))
		exp, _ := otlptracegrpc.New(context.Background(),
			otlptracegrpc.WithGRPCConn(conn),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
			otlptracegrpc.WithTimeout(5*time.Second))
		return exp
	})
}

// providerFor returns the tracer of the provider under key, making it
// with the exporter mk returns when there is none yet. Its spans carry
// service as service.name; sent and dropped count them; ids, when not nil,
// makes the ids of new traces.
func providerFor(key, service string, sent, dropped *atomic.Int64, ids sdktrace.IDGenerator, mk func() sdktrace.SpanExporter) trace.Tracer {
	providersMu.Lock()
	defer providersMu.Unlock()
	if tp := providers[key]; tp != nil {
		return tp.Tracer("mesh-proxy")
	}
	res, _ := resource.Merge(resource.Empty(), resource.NewSchemaless(semconv.ServiceName(service)))
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(newQueue(mk(), sent, dropped))}
	if ids != nil {
		opts = append(opts, sdktrace.WithIDGenerator(ids))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	providers[key] = tp
	return tp.Tracer("mesh-proxy")
}

// Flush exports every queued span now (at shutdown, and for tests).
func Flush(ctx context.Context) {
	providersMu.Lock()
	all := make([]*sdktrace.TracerProvider, 0, len(providers))
	for _, tp := range providers {
		all = append(all, tp)
	}
	providersMu.Unlock()
	for _, tp := range all {
		_ = tp.ForceFlush(ctx)
	}
}

// queue is a span processor that never blocks the request that ends a
// span: spans wait in a bounded channel and one goroutine exports them in
// batches.
type queue struct {
	exp           sdktrace.SpanExporter
	ch            chan sdktrace.ReadOnlySpan
	flush         chan chan struct{}
	sent, dropped *atomic.Int64
}

func newQueue(exp sdktrace.SpanExporter, sent, dropped *atomic.Int64) *queue {
	q := &queue{exp: exp, ch: make(chan sdktrace.ReadOnlySpan, QueueSize), flush: make(chan chan struct{}), sent: sent, dropped: dropped}
	go q.run()
	return q
}

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	select {
	case q.ch <- s:
	default:
		q.dropped.Add(1)
	}
}

func (q *queue) run() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	batch := make([]sdktrace.ReadOnlySpan, 0, 512)
	send := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := q.exp.ExportSpans(ctx, batch); err != nil {
			q.dropped.Add(int64(len(batch)))
			slog.Debug("span export failed; spans dropped", "spans", len(batch), "err", err)
			lastErr.Store(err.Error())
		} else {
			q.sent.Add(int64(len(batch)))
		}
		cancel()
		batch = batch[:0]
	}
	for {
		select {
		case s := <-q.ch:
			if batch = append(batch, s); len(batch) == cap(batch) {
				send()
			}
		case <-t.C:
			send()
		case done := <-q.flush:
			for len(q.ch) > 0 {
				batch = append(batch, <-q.ch)
			}
			send()
			close(done)
		}
	}
}

func (q *queue) ForceFlush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case q.flush <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *queue) Shutdown(ctx context.Context) error { return q.ForceFlush(ctx) }
