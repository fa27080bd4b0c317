package istiostats

import (
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/proxy/accesslog"
	"mesh.dev/mesh/internal/proxy/cluster"
)

// Requests records the requests of a generic_proxy filter (Thrift, a
// declared protocol) in Istio's request metrics, with request_protocol the
// codec's name: the istio.stats network filter before a generic_proxy.
type Requests struct {
	r        *Recorder
	cfg      *config
	inbound  bool
	cluster  func(string) *cluster.Cluster
	services sync.Map // cluster name → service
	series   sync.Map // genericKey → *httpSeries
}

// NewRequests compiles the network filter's stats.PluginConfig for a generic_proxy on a listener of direction.
func NewRequests(r *Recorder, a *anypb.Any, field, direction string, clusters func(string) *cluster.Cluster) (*Requests, error) {
	cfg, err := compile(a, field)
	if err != nil {
		return nil, err
	}
	return &Requests{r: r, cfg: cfg, inbound: direction == "inbound" && !cfg.gatewayReporter, cluster: clusters}, nil
}

type genericKey struct {
	principal, cluster, proto, flags, dims string
	code                                   int
}

// Record counts one finished request from its access log entry.
func (q *Requests) Record(e *accesslog.Entry) {
	k := genericKey{cluster: e.Cluster, proto: e.Protocol, flags: e.Flags, code: e.Status}
	if q.inbound {
		k.principal = e.Principal
	}
	var vals []string
	if len(q.cfg.exprs) > 0 {
		vals = evalAll(q.cfg, accesslog.Attributes(e))
		k.dims = strings.Join(vals, "\xff")
	}
	v, ok := q.series.Load(k)
	if !ok {
		v, _ = q.series.LoadOrStore(k, q.newSeries(&k, vals))
	}
	hs := v.(*httpSeries)
	if hs.requests != nil {
		hs.requests.Inc()
	}
	if hs.duration != nil {
		hs.duration.Observe(float64(e.Duration.Microseconds()) / 1000)
	}
	if hs.rq != nil {
		hs.rq.Observe(float64(e.BytesIn))
	}
	if hs.rsp != nil {
		hs.rsp.Observe(float64(e.BytesOut))
	}
}

func (q *Requests) newSeries(k *genericKey, vals []string) *httpSeries {
	var c *cluster.Cluster
	if q.cluster != nil && k.cluster != "" {
		c = q.cluster(k.cluster)
	}
	svc, _ := clusterService(c, k.cluster)
	std := q.r.standard(&exchange{inbound: q.inbound, peerPrincipal: k.principal, mtls: k.principal != "", svc: svc,
		proto: k.proto, code: strconv.Itoa(k.code), flags: k.flags})
	hs := &httpSeries{}
	if q.cfg.metrics[RequestsTotal] != nil {
		hs.requests = q.r.counter(RequestsTotal, q.cfg.labels(RequestsTotal, std, vals))
	}
	if q.cfg.metrics[RequestDuration] != nil {
		hs.duration = q.r.histogram(RequestDuration, q.cfg.labels(RequestDuration, std, vals))
	}
	if q.cfg.metrics[RequestBytes] != nil {
		hs.rq = q.r.histogram(RequestBytes, q.cfg.labels(RequestBytes, std, vals))
	}
	if q.cfg.metrics[ResponseBytes] != nil {
		hs.rsp = q.r.histogram(ResponseBytes, q.cfg.labels(ResponseBytes, std, vals))
	}
	return hs
}
