// Package istiostats records Istio's standard metrics (istio_requests_total,
// istio_request_duration_milliseconds, istio_request_bytes,
// istio_response_bytes and the istio_tcp_* counters) with Istio's labels,
// as Istio's stats filter does: an HTTP filter (istio.stats, typed_config
// stats.PluginConfig) on an HCM's chain records each finished request, and
// the network filter of the same name records a TCP proxy's connections.
// Peer labels (source_workload, destination_version, ...) come from the
// metadata package peermeta exchanged with the proxy at the other end.
package istiostats

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"mesh.dev/mesh/internal/proxy/peermeta"
)

// The metrics, by the names Telemetry overrides and stats.PluginConfig use
// (the exported name has the istio_ prefix).
const (
	RequestsTotal    = "requests_total"
	RequestDuration  = "request_duration_milliseconds"
	RequestBytes     = "request_bytes"
	ResponseBytes    = "response_bytes"
	TCPOpened        = "tcp_connections_opened_total"
	TCPClosed        = "tcp_connections_closed_total"
	TCPSentBytes     = "tcp_sent_bytes_total"
	TCPReceivedBytes = "tcp_received_bytes_total"
)

// Names lists every metric, HTTP ones first.
var Names = []string{RequestsTotal, RequestDuration, RequestBytes, ResponseBytes, TCPOpened, TCPClosed, TCPSentBytes, TCPReceivedBytes}

var help = map[string]string{
	RequestsTotal:    "Requests handled by the proxy.",
	RequestDuration:  "Request durations, in milliseconds.",
	RequestBytes:     "Request body sizes, in bytes.",
	ResponseBytes:    "Response body sizes, in bytes.",
	TCPOpened:        "TCP connections opened.",
	TCPClosed:        "TCP connections closed.",
	TCPSentBytes:     "Bytes sent downstream on TCP connections.",
	TCPReceivedBytes: "Bytes received from downstream on TCP connections.",
}

// Istio's default buckets.
var (
	durationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}
	sizeBuckets     = prometheus.ExponentialBuckets(1, 10, 9)
)

// Labels are the standard labels, in Istio's order.
var Labels = []string{
	"reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
	"source_canonical_service", "source_canonical_revision", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"destination_canonical_service", "destination_canonical_revision", "destination_cluster",
	"request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy",
}

// Recorder holds a proxy's series for its lifetime (filters come and go
// with config updates; their counts stay). It is a prometheus.Collector.
type Recorder struct {
	// Self is this proxy's workload.
	Self *peermeta.Node
	// TrustDomain is used for this proxy's and peers' principals when no
	// certificate says (default cluster.local).
	TrustDomain string

	mu     sync.Mutex
	byKey  map[string]prometheus.Collector
	all    atomic.Pointer[[]prometheus.Collector]
	series atomic.Int64
}

// NewRecorder returns a Recorder for a proxy whose workload is self.
func NewRecorder(self *peermeta.Node) *Recorder {
	if self == nil {
		self = &peermeta.Node{}
	}
	return &Recorder{Self: self, TrustDomain: "cluster.local", byKey: map[string]prometheus.Collector{}}
}

// Describe sends nothing: the series are made as traffic arrives, and
// overrides may give one metric different labels on different listeners.
func (r *Recorder) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	if all := r.all.Load(); all != nil {
		for _, c := range *all {
			c.Collect(ch)
		}
	}
}

// Series is how many series the recorder holds.
func (r *Recorder) Series() int64 { return r.series.Load() }

// counter returns the counter of metric name with the labels (name, value pairs).
func (r *Recorder) counter(name string, labels []string) prometheus.Counter {
	return r.get(name, labels, func(cl prometheus.Labels) prometheus.Collector {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "istio_" + name, Help: help[name], ConstLabels: cl})
	}).(prometheus.Counter)
}

// histogram returns the histogram of metric name with the labels.
func (r *Recorder) histogram(name string, labels []string) prometheus.Observer {
	b := sizeBuckets
	if name == RequestDuration {
		b = durationBuckets
	}
	return r.get(name, labels, func(cl prometheus.Labels) prometheus.Collector {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: "istio_" + name, Help: help[name], Buckets: b, ConstLabels: cl})
	}).(prometheus.Observer)
}

func (r *Recorder) get(name string, labels []string, mk func(prometheus.Labels) prometheus.Collector) prometheus.Collector {
	var b strings.Builder
	b.WriteString(name)
	for _, s := range labels {
		b.WriteByte(0xff)
		b.WriteString(s)
	}
	k := b.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.byKey[k]; ok {
		return c
	}
	cl := make(prometheus.Labels, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		cl[labels[i]] = labels[i+1]
	}
	c := mk(cl)
	r.byKey[k] = c
	var next []prometheus.Collector
	if all := r.all.Load(); all != nil {
		next = append(next, *all...)
	}
	next = append(next, c)
	r.all.Store(&next)
	r.series.Add(1)
	return c
}
