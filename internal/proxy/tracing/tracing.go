// Package tracing is mesh-proxy's side of Envoy's HCM tracing: a span per
// request, its context propagated upstream in W3C traceparent and B3
// headers, and, when the HCM names an OpenTelemetry or a Zipkin provider,
// the span exported with the OpenTelemetry Go SDK (OTLP gRPC, or Zipkin v2
// JSON over HTTP) to the provider's cluster. Exporting never holds a request: ended spans go to a bounded
// queue drained in the background; when it is full they are dropped and
// counted (Dropped).
package tracing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"mesh.dev/mesh/internal/proxy/protofields"
)

// OpenTelemetryType is the provider type Compile exports spans for.
const OpenTelemetryType = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"

// Dialer opens a connection to a cluster of the proxy's current config;
// h2 offers HTTP/2 by ALPN over the cluster's TLS (gRPC exporters).
type Dialer func(ctx context.Context, cluster string, h2 bool) (netConn, error)

// Tracer is an HCM's compiled tracing config.
type Tracer struct {
	percent float64 // random_sampling: share of requests without a decision that are sampled
	maxPath int     // max_path_tag_length: the http.url tag is cut to this length
	kind    trace.SpanKind
	tags    []tag
	tracer  trace.Tracer // nil: spans are propagated, not reported
}

type tag struct {
	name, literal, header, env, def string
}

// Compile builds a Tracer from an HCM's tracing field; direction is the
// listener's ("inbound": server spans; otherwise client spans, as Envoy
// makes on sidecars' outbound side and gateways). Exporters are shared by
// HCMs of one owner (a proxy's config store) naming the same collector.
// service is the proxy's local service name, which Envoy's Zipkin tracer
// reports spans under (the node's cluster; OpenTelemetry's config names
// its own).
func Compile(t *hcmv3.HttpConnectionManager_Tracing, field, direction string, owner any, service string, dial Dialer) (*Tracer, error) {
	if err := protofields.Check(t, field, "random_sampling", "client_sampling", "overall_sampling", "custom_tags", "provider", "max_path_tag_length", "spawn_upstream_span", "verbose"); err != nil {
		return nil, err
	}
	tr := &Tracer{percent: 100, kind: trace.SpanKindClient, maxPath: 256} // Envoy's default length
	if direction == "inbound" {
		tr.kind = trace.SpanKindServer
	}
	if rs := t.GetRandomSampling(); rs != nil {
		tr.percent = rs.GetValue()
	}
	if m := t.GetMaxPathTagLength(); m != nil {
		tr.maxPath = int(m.GetValue())
	}
	for i, ct := range t.GetCustomTags() {
		tg := tag{name: ct.GetTag()}
		switch {
		case ct.GetLiteral() != nil:
			tg.literal = ct.GetLiteral().GetValue()
		case ct.GetRequestHeader() != nil:
			tg.header, tg.def = ct.GetRequestHeader().GetName(), ct.GetRequestHeader().GetDefaultValue()
		case ct.GetEnvironment() != nil:
			tg.env, tg.def = ct.GetEnvironment().GetName(), ct.GetEnvironment().GetDefaultValue()
			if v, ok := os.LookupEnv(tg.env); ok {
				tg.literal, tg.env = v, ""
			} else {
				tg.literal, tg.env = tg.def, ""
			}
		default:
			return nil, fmt.Errorf("%s.custom_tags[%d]: only literal, request_header and environment tags are supported", field, i)
		}
		tr.tags = append(tr.tags, tg)
	}
	p := t.GetProvider()
	if p == nil {
		return tr, nil
	}
	switch p.GetTypedConfig().GetTypeUrl() {
	case OpenTelemetryType:
	case ZipkinType:
		zc := &tracev3.ZipkinConfig{}
		if err := p.GetTypedConfig().UnmarshalTo(zc); err != nil {
			return nil, fmt.Errorf("%s.provider.typed_config: %w", field, err)
		}
		if service == "" {
			service = "unknown"
		}
		var err error
		if tr.tracer, err = zipkinTracer(zc, field+".provider.typed_config", owner, service, dial); err != nil {
			return nil, err
		}
		return tr, nil
	default:
		return nil, fmt.Errorf("%s.provider: tracer %q is not supported (supported: %s over grpc_service, %s)", field, p.GetTypedConfig().GetTypeUrl(), OpenTelemetryType, ZipkinType)
	}
	oc := &tracev3.OpenTelemetryConfig{}
	if err := p.GetTypedConfig().UnmarshalTo(oc); err != nil {
		return nil, fmt.Errorf("%s.provider.typed_config: %w", field, err)
	}
	eg := oc.GetGrpcService().GetEnvoyGrpc()
	if eg.GetClusterName() == "" {
		return nil, fmt.Errorf("%s.provider.typed_config.grpc_service.envoy_grpc.cluster_name: the OTLP collector's cluster is required (http_service is not supported)", field)
	}
	authority := eg.GetAuthority()
	if authority == "" {
		authority = eg.GetClusterName()
	}
	tr.tracer = tracerFor(owner, eg.GetClusterName(), authority, oc.GetServiceName(), dial)
	return tr, nil
}

// Span is one request's span, started by Start and ended by End.
type Span struct {
	span     trace.Span // nil when not reported
	sc       trace.SpanContext
	tid, sid string // the ids in hex, as sent upstream
}

// TraceID and SpanID are the span's ids in hex, for access logs.
func (s *Span) TraceID() string {
	if s.tid != "" {
		return s.tid
	}
	return s.sc.TraceID().String()
}

func (s *Span) SpanID() string {
	if s.sid != "" {
		return s.sid
	}
	return s.sc.SpanID().String()
}

// Reported says whether End reports the span (it was sampled and there is
// an exporter); callers skip working out what only End would use.
func (s *Span) Reported() bool { return s != nil && s.span != nil }

// Sampled reports whether the trace is sampled.
func (s *Span) Sampled() bool { return s.sc.IsSampled() }

// Start begins the request's span: the caller's context (traceparent, else
// B3) is the parent and its sampling decision is kept; without one a new
// trace is sampled at the configured percentage. The request's headers
// then carry the new span to the upstream, in both forms.
func (t *Tracer) Start(r *http.Request, start time.Time) *Span {
	s := &Span{}
	t.StartInto(s, r, start)
	return s
}

// StartInto is Start filling in a Span the caller holds (a request's
// state), saving an allocation per request.
func (t *Tracer) StartInto(s *Span, r *http.Request, start time.Time) {
	*s = Span{}
	parent, decided := Extract(r.Header)
	sampled := parent.IsSampled()
	if !decided {
		sampled = t.percent >= 100 || t.percent > 0 && rand.Float64()*100 < t.percent
	}
	if sampled && t.tracer != nil {
		ctx := context.Background()
		if parent.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, parent.WithTraceFlags(parent.TraceFlags().WithSampled(true)))
		}
		_, s.span = t.tracer.Start(ctx, r.Host, trace.WithSpanKind(t.kind), trace.WithTimestamp(start))
		s.sc = s.span.SpanContext()
	} else {
		tid := parent.TraceID()
		if !parent.IsValid() {
			tid = randTraceID()
		}
		flags := trace.TraceFlags(0)
		if sampled {
			flags = trace.FlagsSampled
		}
		s.sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: randSpanID(), TraceFlags: flags})
	}
	s.tid, s.sid = inject(r.Header, s.sc, parent.SpanID())
	if s.span != nil {
		attrs := make([]attribute.KeyValue, 0, 8+len(t.tags))
		url := "http://" + r.Host + r.URL.RequestURI()
		if len(url) > t.maxPath {
			url = url[:t.maxPath]
		}
		attrs = append(attrs, attribute.String("http.method", r.Method), attribute.String("http.url", url),
			attribute.String("http.protocol", r.Proto), attribute.String("component", "proxy"),
			attribute.String("guid:x-request-id", r.Header.Get("X-Request-Id")), attribute.String("user_agent", r.UserAgent()))
		for _, tg := range t.tags {
			v := tg.literal
			if tg.header != "" {
				if v = r.Header.Get(tg.header); v == "" {
					v = tg.def
				}
			}
			attrs = append(attrs, attribute.String(tg.name, v))
		}
		s.span.SetAttributes(attrs...)
	}
}

// End finishes the span with what the request came to.
func (s *Span) End(name string, code int, flags, cluster, upstreamHost string, end time.Time) {
	if s == nil || s.span == nil {
		return
	}
	if name != "" {
		s.span.SetName(name)
	}
	s.span.SetAttributes(attribute.Int("http.status_code", code), attribute.String("response_flags", flags),
		attribute.String("upstream_cluster", cluster), attribute.String("upstream_cluster.name", cluster),
		attribute.String("peer.address", upstreamHost))
	if code >= 500 || code == 0 {
		s.span.SetStatus(codes.Error, strconv.Itoa(code))
		s.span.SetAttributes(attribute.Bool("error", true))
	}
	s.span.End(trace.WithTimestamp(end))
}

// OperationName is Istio's span name for a request to a cluster:
// "<service host>:<port>/*" for outbound|port||host and inbound|port||host.
func OperationName(cluster, host string) string {
	parts := strings.Split(cluster, "|")
	if len(parts) == 4 && parts[3] != "" {
		return parts[3] + ":" + parts[1] + "/*"
	}
	return host + "/*"
}

func randTraceID() trace.TraceID {
	var t trace.TraceID
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		t[i], t[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	return t
}

func randSpanID() trace.SpanID {
	var s trace.SpanID
	a := rand.Uint64() | 1
	for i := 0; i < 8; i++ {
		s[i] = byte(a >> (8 * i))
	}
	return s
}
