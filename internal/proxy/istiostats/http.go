package istiostats

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"mesh.dev/mesh/internal/proxy/accesslog"
	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/peermeta"
)

// Factory is the stats HTTP filter recording into r.
func Factory(r *Recorder) httpfilter.Factory {
	return httpfilter.Factory{
		Name:        FilterName,
		ConfigTypes: []string{ConfigType},
		New: func(c httpfilter.Config) (httpfilter.Filter, error) {
			cfg, err := compile(c.Any, c.Field)
			if err != nil {
				return nil, err
			}
			return &httpFilter{r: r, cfg: cfg, inbound: c.Env.Direction == "inbound" && !cfg.gatewayReporter, cluster: c.Env.Cluster}, nil
		},
	}
}

type httpFilter struct {
	r        *Recorder
	cfg      *config
	inbound  bool
	cluster  func(string) *cluster.Cluster
	services sync.Map // cluster name → clusterSvc
	series   sync.Map // httpKey → *httpSeries
}

type clusterSvc struct {
	svc service
	ok  bool // false: the Host header names the service
}

// httpKey is what tells a request's series apart before overrides; peers
// are compared by pointer (peermeta caches each distinct header's Node).
type httpKey struct {
	peer          *peermeta.Node
	peerPrincipal string
	mtls          bool
	cluster, host string
	code          int
	grpc, flags   string
	proto         string
	dims          string
}

type httpSeries struct {
	requests          prometheus.Counter
	duration, rq, rsp prometheus.Observer
}

func (f *httpFilter) DecodeHeaders(*httpfilter.Stream) httpfilter.Status { return httpfilter.Continue }

// Complete records the request in Istio's four HTTP metrics.
func (f *httpFilter) Complete(s *httpfilter.Stream, d *httpfilter.Done) {
	r := s.Request
	k := httpKey{cluster: d.Cluster, code: d.Code, flags: d.Flags, proto: "http"}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		k.proto, k.grpc = "grpc", d.GRPCStatus
	}
	if f.inbound {
		k.peer, _ = s.Meta().Get(peermeta.DownstreamKey).(*peermeta.Node)
		k.peerPrincipal = s.Peer.Principal()
		k.mtls = k.peerPrincipal != ""
	} else {
		k.peer, _ = s.Meta().Get(peermeta.UpstreamKey).(*peermeta.Node)
	}
	cs := f.service(d.Cluster)
	if !cs.ok && !f.cfg.noHostFallback {
		k.host = r.Host
	}
	var vals []string
	if len(f.cfg.exprs) > 0 {
		vals = f.eval(s, d)
		k.dims = strings.Join(vals, "\xff")
	}
	v, ok := f.series.Load(k)
	if !ok {
		v, _ = f.series.LoadOrStore(k, f.newSeries(&k, cs, vals))
	}
	hs := v.(*httpSeries)
	if hs.requests != nil {
		hs.requests.Inc()
	}
	if hs.duration != nil {
		hs.duration.Observe(float64(d.Duration.Microseconds()) / 1000)
	}
	if hs.rq != nil {
		hs.rq.Observe(float64(d.BytesIn))
	}
	if hs.rsp != nil {
		hs.rsp.Observe(float64(d.BytesOut))
	}
}

func (f *httpFilter) service(name string) clusterSvc {
	if v, ok := f.services.Load(name); ok {
		return v.(clusterSvc)
	}
	var c *cluster.Cluster
	if f.cluster != nil && name != "" {
		c = f.cluster(name)
	}
	svc, ok := clusterService(c, name)
	cs := clusterSvc{svc, ok}
	f.services.Store(name, cs)
	return cs
}

func (f *httpFilter) newSeries(k *httpKey, cs clusterSvc, vals []string) *httpSeries {
	svc := cs.svc
	if !cs.ok && k.host != "" {
		svc = hostService(k.host)
	}
	std := f.r.standard(&exchange{inbound: f.inbound, peer: k.peer, peerPrincipal: k.peerPrincipal, mtls: k.mtls, svc: svc,
		proto: k.proto, code: strconv.Itoa(k.code), grpc: k.grpc, flags: k.flags})
	hs := &httpSeries{}
	if f.cfg.metrics[RequestsTotal] != nil {
		hs.requests = f.r.counter(RequestsTotal, f.cfg.labels(RequestsTotal, std, vals))
	}
	if f.cfg.metrics[RequestDuration] != nil {
		hs.duration = f.r.histogram(RequestDuration, f.cfg.labels(RequestDuration, std, vals))
	}
	if f.cfg.metrics[RequestBytes] != nil {
		hs.rq = f.r.histogram(RequestBytes, f.cfg.labels(RequestBytes, std, vals))
	}
	if f.cfg.metrics[ResponseBytes] != nil {
		hs.rsp = f.r.histogram(ResponseBytes, f.cfg.labels(ResponseBytes, std, vals))
	}
	return hs
}

// eval evaluates the added dimensions over the request's attributes; an
// expression that fails gives "unknown", as in Istio.
func (f *httpFilter) eval(s *httpfilter.Stream, d *httpfilter.Done) []string {
	r := s.Request
	e := &accesslog.Entry{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Protocol: r.Proto, Status: d.Code, Flags: d.Flags,
		Cluster: d.Cluster, BytesIn: d.BytesIn, BytesOut: d.BytesOut, Duration: d.Duration, Header: r.Header, RespHeader: d.RespHeader,
		TLS: s.Peer.TLS, Principal: s.Peer.Principal(), RequestID: r.Header.Get("X-Request-Id"), UserAgent: r.UserAgent(), Meta: s.Meta()}
	if s.Peer.Remote.IsValid() {
		e.Remote = s.Peer.Remote.String()
	}
	if s.Peer.Local.IsValid() {
		e.Local = s.Peer.Local.String()
	}
	return evalAll(f.cfg, accesslog.Attributes(e))
}

func evalAll(cfg *config, vars interface{ Field(string) (any, bool) }) []string {
	out := make([]string, len(cfg.exprs))
	for i, x := range cfg.exprs {
		v, err := x.Eval(vars)
		switch {
		case err != nil || v == nil:
			out[i] = unknown
		default:
			out[i] = fmt.Sprint(v)
		}
	}
	return out
}
