// Package fault is the envoy.filters.http.fault HTTP filter: it delays or
// aborts a share of requests, with per-route HTTPFault overrides (the shape
// Istio's VirtualService fault injection is sent in).
package fault

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/router"
	"mesh.dev/mesh/internal/proxy/runtime"
)

// TypeURL is HTTPFault's type URL, both as the filter's config and per route.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

// Envoy's default runtime keys for the two shares.
const (
	defaultDelayPercentKey = "fault.http.delay.fixed_delay_percent"
	defaultAbortPercentKey = "fault.http.abort.abort_percent"
)

// Factory registers the fault filter.
func Factory() httpfilter.Factory {
	return httpfilter.Factory{
		Name:          "envoy.filters.http.fault",
		ConfigTypes:   []string{TypeURL},
		PerRouteTypes: []string{TypeURL},
		New: func(c httpfilter.Config) (httpfilter.Filter, error) {
			ft, err := compileAny(c.Any, c.Field)
			if err != nil {
				return nil, err
			}
			return &filter{own: ft, rt: c.Env.Runtime, aborted: c.Env.Counter(c.Env.StatPrefix + "fault.aborts_injected"),
				delayed: c.Env.Counter(c.Env.StatPrefix + "fault.delays_injected")}, nil
		},
		NewPerRoute: func(a *anypb.Any, field string) (any, error) { return compileAny(a, field) },
	}
}

func compileAny(a *anypb.Any, field string) (*Fault, error) {
	hf := &faultv3.HTTPFault{}
	if err := a.UnmarshalTo(hf); err != nil {
		return nil, fmt.Errorf("%s: want HTTPFault: %w", field, err)
	}
	return Compile(hf, field)
}

// Fault is a compiled HTTPFault: delays and aborts for a share of requests.
type Fault struct {
	Delay         time.Duration
	DelayFraction runtime.Fraction
	AbortStatus   int
	AbortGRPC     int
	AbortFraction runtime.Fraction
	headers       []*router.HeaderMatcher
	maxActive     int64
	active        atomic.Int64
}

// Compile compiles an HTTPFault; fields the proxy does not act on are refused by name.
func Compile(hf *faultv3.HTTPFault, f string) (*Fault, error) {
	if err := hf.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	// disable_downstream_cluster_stats holds trivially: no per-downstream-cluster fault stats are kept.
	if err := checkFields(hf, f); err != nil {
		return nil, err
	}
	ft := &Fault{maxActive: -1}
	if d := hf.GetDelay(); d != nil {
		if d.GetHeaderDelay() != nil {
			return nil, fmt.Errorf("%s.delay.header_delay: not supported; use fixed_delay", f)
		}
		ft.Delay = d.GetFixedDelay().AsDuration()
		ft.DelayFraction = fraction(d.GetPercentage(), hf.GetDelayPercentRuntime(), defaultDelayPercentKey)
	}
	if a := hf.GetAbort(); a != nil {
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			ft.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			ft.AbortGRPC, ft.AbortStatus = int(e.GrpcStatus), 200
		default:
			return nil, fmt.Errorf("%s.abort: %T is not supported; use http_status or grpc_status", f, e)
		}
		ft.AbortFraction = fraction(a.GetPercentage(), hf.GetAbortPercentRuntime(), defaultAbortPercentKey)
	}
	for i, h := range hf.GetHeaders() {
		hm, err := router.CompileHeaderMatcher(h, fmt.Sprintf("%s.headers[%d]", f, i))
		if err != nil {
			return nil, err
		}
		ft.headers = append(ft.headers, hm)
	}
	if m := hf.GetMaxActiveFaults(); m != nil {
		ft.maxActive = int64(m.GetValue())
	}
	return ft, nil
}

func checkFields(hf *faultv3.HTTPFault, f string) error {
	var bad string
	switch {
	case hf.GetUpstreamCluster() != "":
		bad = "upstream_cluster"
	case len(hf.GetDownstreamNodes()) > 0:
		bad = "downstream_nodes"
	case hf.GetResponseRateLimit() != nil:
		bad = "response_rate_limit"
	case hf.GetDelayDurationRuntime() != "":
		bad = "delay_duration_runtime"
	case hf.GetAbortHttpStatusRuntime() != "":
		bad = "abort_http_status_runtime"
	case hf.GetAbortGrpcStatusRuntime() != "":
		bad = "abort_grpc_status_runtime"
	case hf.GetMaxActiveFaultsRuntime() != "":
		bad = "max_active_faults_runtime"
	case hf.GetResponseRateLimitPercentRuntime() != "":
		bad = "response_rate_limit_percent_runtime"
	case hf.GetFilterMetadata() != nil:
		bad = "filter_metadata"
	}
	if bad != "" {
		return fmt.Errorf("%s.%s: not supported by mesh-proxy (remove it, or it would be ignored)", f, bad)
	}
	return nil
}

// fraction is the configured share, which the runtime key (Envoy's default key when none is named) overrides.
func fraction(p *typev3.FractionalPercent, key, def string) runtime.Fraction {
	if key == "" {
		key = def
	}
	return runtime.FractionOf(p, key)
}

// Decide draws the fault's dice for one request: how long to delay, and
// whether to abort with which status. done must be called when the request ends.
func (ft *Fault) Decide(rt *runtime.Runtime, h http.Header) (delay time.Duration, abort int, done func()) {
	for _, hm := range ft.headers {
		if !hm.Match(h) {
			return 0, 0, noop
		}
	}
	if ft.maxActive >= 0 && ft.active.Load() >= ft.maxActive {
		return 0, 0, noop
	}
	if ft.Delay > 0 && rt.Enabled(&ft.DelayFraction) {
		delay = ft.Delay
	}
	if ft.AbortStatus != 0 && rt.Enabled(&ft.AbortFraction) {
		abort = ft.AbortStatus
	}
	if delay == 0 && abort == 0 {
		return 0, 0, noop
	}
	ft.active.Add(1)
	return delay, abort, func() { ft.active.Add(-1) }
}

func noop() {}

// filter runs the HCM's HTTPFault, or the route's in its place.
type filter struct {
	own              *Fault
	rt               *runtime.Runtime
	aborted, delayed *atomic.Int64
}

func (f *filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	ft := f.own
	if pr, ok := s.PerRoute().(*Fault); ok {
		ft = pr // Envoy: a per-route HTTPFault replaces the filter's config
	}
	delay, abort, done := ft.Decide(f.rt, s.Request.Header)
	defer done()
	if delay > 0 {
		f.delayed.Add(1)
		s.SetFlag("DI")
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.Done():
			t.Stop()
			return httpfilter.Stop // the client left; nothing to answer
		}
	}
	if abort == 0 {
		return httpfilter.Continue
	}
	f.aborted.Add(1)
	if ft.AbortGRPC != 0 {
		return s.SendLocalReply(http.StatusOK, http.Header{"Content-Type": {"application/grpc"},
			"Grpc-Status": {strconv.Itoa(ft.AbortGRPC)}, "Grpc-Message": {"fault filter abort"}}, "", "FI")
	}
	return s.SendLocalReply(abort, nil, "fault filter abort", "FI")
}
