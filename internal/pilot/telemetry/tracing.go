package telemetry

import (
	"fmt"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
)

// Tracing is the HCM tracing config of one listener class of a proxy, with
// a key equal exactly when the configs are. HCM is nil when tracing is off
// (trace headers are still propagated).
type Tracing struct {
	HCM *hcmv3.HttpConnectionManager_Tracing
	Key string
}

// Tracing resolves w's tracing for listeners of class c: Telemetry tracing
// entries whose match mode takes in c, least specific first, each setting
// what it sets (providers, randomSamplingPercentage, customTags,
// disableSpanReporting); then the mesh defaults: defaultProviders.tracing
// and defaultConfig.tracing.sampling (1% when unset, as Istio). Without any
// entry or default provider, meshConfig enableTracing decides whether
// spans are made at all (sampled, propagated, not reported).
func (p *Policy) Tracing(w Workload, c Class) Tracing {
	var providers []string
	var percent *float64
	var tags map[string]*telemetryapi.Tracing_CustomTag
	disabled, applied := false, false
	for _, t := range p.applicable(w) {
		for _, tr := range t.Spec.GetTracing() {
			if !c.matches(tr.GetMatch().GetMode()) {
				continue
			}
			applied = true
			if len(tr.GetProviders()) > 0 {
				providers = nil
				for _, pr := range tr.GetProviders() {
					providers = append(providers, pr.GetName())
				}
			}
			if v := tr.GetRandomSamplingPercentage(); v != nil {
				x := v.GetValue()
				percent = &x
			}
			if len(tr.GetCustomTags()) > 0 {
				tags = tr.GetCustomTags()
			}
			if v := tr.GetDisableSpanReporting(); v != nil {
				disabled = v.GetValue()
			}
		}
	}
	if providers == nil {
		providers = p.Mesh.GetDefaultProviders().GetTracing()
	}
	if !applied && len(providers) == 0 && !p.Mesh.GetEnableTracing() {
		return Tracing{}
	}
	pct := p.Mesh.GetDefaultConfig().GetTracing().GetSampling()
	if pct == 0 {
		pct = 1
	}
	if percent != nil {
		pct = *percent
	}
	t := &hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: pct}}
	names := make([]string, 0, len(tags))
	for n := range tags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ct := &tracingtypev3.CustomTag{Tag: n}
		switch x := tags[n].GetType().(type) {
		case *telemetryapi.Tracing_CustomTag_Literal:
			ct.Type = &tracingtypev3.CustomTag_Literal_{Literal: &tracingtypev3.CustomTag_Literal{Value: x.Literal.GetValue()}}
		case *telemetryapi.Tracing_CustomTag_Environment:
			ct.Type = &tracingtypev3.CustomTag_Environment_{Environment: &tracingtypev3.CustomTag_Environment{Name: x.Environment.GetName(), DefaultValue: x.Environment.GetDefaultValue()}}
		case *telemetryapi.Tracing_CustomTag_Header:
			ct.Type = &tracingtypev3.CustomTag_RequestHeader{RequestHeader: &tracingtypev3.CustomTag_Header{Name: x.Header.GetName(), DefaultValue: x.Header.GetDefaultValue()}}
		default:
			continue // reported by Problems
		}
		t.CustomTags = append(t.CustomTags, ct)
	}
	if !disabled && len(providers) > 0 {
		t.Provider = p.tracer(providers[0], w)
		if t.Provider != nil {
			pr := provider(p.Mesh, providers[0])
			if n := max(pr.GetZipkin().GetMaxTagLength(), pr.GetOpentelemetry().GetMaxTagLength()); n > 0 {
				t.MaxPathTagLength = wrapperspb.UInt32(n)
			}
		}
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(t)
	return Tracing{HCM: t, Key: string(b)}
}

// tracer is the Envoy tracer of a provider (nil when it is not one mesh
// reports to: propagated only, reported by Problems).
func (p *Policy) tracer(name string, w Workload) *tracev3.Tracing_Http {
	pr := provider(p.Mesh, name)
	if z := pr.GetZipkin(); z != nil {
		return zipkinTracer(z)
	}
	ot := pr.GetOpentelemetry()
	if ot == nil || ot.GetHttp() != nil {
		return nil
	}
	host := serviceHost(ot.GetService())
	svc := w.Labels["service.istio.io/canonical-name"]
	if svc == "" {
		svc = w.Labels["app.kubernetes.io/name"]
	}
	if svc == "" {
		svc = w.Labels["app"]
	}
	if svc == "" {
		svc = "unknown"
	}
	oc := &tracev3.OpenTelemetryConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
			ClusterName: fmt.Sprintf("outbound|%d||%s", ot.GetPort(), host), Authority: host,
		}}},
		ServiceName: svc + "." + w.Namespace,
	}
	return &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry",
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(oc)}}
}

// zipkinTracer is Envoy's Zipkin tracer for a zipkin provider, as istiod
// writes it: Zipkin v2 JSON to path (/api/v2/spans by default) on the
// provider's outbound cluster, its host as the Host header, a span per
// proxy hop (shared_span_context false), 128-bit trace ids unless
// enable64bitTraceId. The proxy reports under its node's cluster name.
func zipkinTracer(z *meshconfig.MeshConfig_ExtensionProvider_ZipkinTracingProvider) *tracev3.Tracing_Http {
	host := serviceHost(z.GetService())
	path := z.GetPath()
	if path == "" {
		path = "/api/v2/spans"
	}
	zc := &tracev3.ZipkinConfig{
		CollectorCluster:         fmt.Sprintf("outbound|%d||%s", z.GetPort(), host),
		CollectorEndpoint:        path,
		CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
		CollectorHostname:        host,
		TraceId_128Bit:           !z.GetEnable_64BitTraceId(),
		SharedSpanContext:        wrapperspb.Bool(false),
	}
	if z.GetTraceContextOption() == meshconfig.MeshConfig_ExtensionProvider_ZipkinTracingProvider_USE_B3_WITH_W3C_PROPAGATION {
		zc.TraceContextOption = tracev3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION
	}
	return &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin",
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(zc)}}
}

// serviceHost takes Istio's forms of a provider's service: a hostname, or
// namespace/hostname.
func serviceHost(s string) string {
	if _, h, ok := strings.Cut(s, "/"); ok {
		return h
	}
	return s
}

func (p *Policy) tracingProblems(id string, t *telemetryv1.Telemetry) []Problem {
	var out []Problem
	for i, tr := range t.Spec.GetTracing() {
		f := fmt.Sprintf("spec.tracing[%d]", i)
		for j, pr := range tr.GetProviders() {
			pf := fmt.Sprintf("%s.providers[%d]", f, j)
			ep := provider(p.Mesh, pr.GetName())
			switch {
			case j > 0:
				out = append(out, Problem{id, pf, "only the first tracing provider is used, as in Istio"})
			case ep == nil:
				out = append(out, Problem{id, pf, fmt.Sprintf("no extension provider %q in the mesh config; spans are propagated, not reported", pr.GetName())})
			case ep.GetZipkin() != nil:
				// reported, where it is not carried out, with the mesh config's problems
			case ep.GetOpentelemetry() == nil:
				out = append(out, Problem{id, pf, fmt.Sprintf("provider %q is neither an opentelemetry nor a zipkin provider; spans are propagated, not reported", pr.GetName())})
			case ep.GetOpentelemetry().GetHttp() != nil:
				out = append(out, Problem{id, pf, fmt.Sprintf("provider %q exports OTLP over HTTP, which mesh-proxy does not do yet (gRPC only); spans are propagated, not reported", pr.GetName())})
			}
		}
		for name, ct := range tr.GetCustomTags() {
			if ct.GetFormatter() != nil {
				out = append(out, Problem{id, f + ".customTags." + name, "formatter tags are not supported; the tag is left out"})
			}
		}
		if tr.GetUseRequestIdForTraceSampling() != nil || tr.GetEnableIstioTags() != nil || tr.GetDisableContextPropagation() != nil {
			out = append(out, Problem{id, f, "useRequestIdForTraceSampling, enableIstioTags and disableContextPropagation are not carried out"})
		}
	}
	return out
}
