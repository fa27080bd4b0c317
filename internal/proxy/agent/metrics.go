package agent

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"mesh.dev/mesh/internal/proxy/listener"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

// istioLabels are the labels of Istio's standard metrics, in Istio's order.
var istioLabels = []string{
	"reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
	"source_canonical_service", "source_canonical_revision", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"destination_canonical_service", "destination_canonical_revision", "destination_cluster",
	"request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy",
}

// Metrics records Istio's standard request metrics.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reqBytes *prometheus.HistogramVec
	resBytes *prometheus.HistogramVec
	tcpOpen  *prometheus.CounterVec
	tcpClose *prometheus.CounterVec
	tcpSent  *prometheus.CounterVec
	tcpRecv  *prometheus.CounterVec
	self     Workload
	cache    sync.Map // seriesKey → *series
}

// Workload identifies this proxy's workload in metric labels.
type Workload struct {
	Name, Namespace, App, Version, Cluster string
}

type seriesKey struct {
	direction, cluster, principal, flags, proto string
	code                                        int
	grpc                                        bool
}

type series struct {
	requests         prometheus.Counter
	duration, rq, rs prometheus.Observer
	open, close      prometheus.Counter
	sent, recv       prometheus.Counter
}

// NewMetrics registers Istio's metrics in a fresh registry.
func NewMetrics(self Workload) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), self: self}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total", Help: "Requests handled by the proxy."}, istioLabels)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Help: "Request duration.",
		Buckets: []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}}, istioLabels)
	sizes := prometheus.ExponentialBuckets(1, 10, 9)
	m.reqBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_bytes", Help: "Request body size.", Buckets: sizes}, istioLabels)
	m.resBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_response_bytes", Help: "Response body size.", Buckets: sizes}, istioLabels)
	m.tcpOpen = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_connections_opened_total", Help: "TCP connections opened."}, istioLabels)
	m.tcpClose = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_connections_closed_total", Help: "TCP connections closed."}, istioLabels)
	m.tcpSent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_sent_bytes_total", Help: "Bytes sent on TCP connections."}, istioLabels)
	m.tcpRecv = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_tcp_received_bytes_total", Help: "Bytes received on TCP connections."}, istioLabels)
	m.Registry.MustRegister(m.requests, m.duration, m.reqBytes, m.resBytes, m.tcpOpen, m.tcpClose, m.tcpSent, m.tcpRecv)
	return m
}

// Observe implements listener.Observer; label resolution is cached per series so the hot path is a lock-free map hit.
func (m *Metrics) Observe(r *listener.Request) {
	k := seriesKey{direction: r.Direction, cluster: r.Cluster, principal: r.Principal, flags: r.Flags, proto: r.Protocol, code: r.Status, grpc: r.GRPC}
	v, ok := m.cache.Load(k)
	if !ok {
		v, _ = m.cache.LoadOrStore(k, m.newSeries(k))
	}
	s := v.(*series)
	if r.Protocol == "TCP" {
		s.open.Inc()
		s.close.Inc()
		s.sent.Add(float64(r.BytesOut))
		s.recv.Add(float64(r.BytesIn))
		return
	}
	s.requests.Inc()
	s.duration.Observe(float64(r.Duration.Microseconds()) / 1000)
	s.rq.Observe(float64(r.BytesIn))
	s.rs.Observe(float64(r.BytesOut))
}

func (m *Metrics) newSeries(k seriesKey) *series {
	unknown := "unknown"
	reporter := "source"
	if k.direction == "inbound" {
		reporter = "destination"
	}
	svc := serviceOf(k.cluster)
	svcName, svcNS := unknown, unknown
	if parts := strings.Split(svc, "."); len(parts) >= 2 {
		svcName, svcNS = parts[0], parts[1]
	}
	peerNS := meshtls.SpiffeNamespace(k.principal)
	if peerNS == "" {
		peerNS = unknown
	}
	principal := k.principal
	if principal == "" {
		principal = unknown
	}
	security := "unknown"
	if reporter == "destination" {
		security = "none"
		if k.principal != "" {
			security = "mutual_tls"
		}
	}
	proto := "http"
	switch {
	case k.proto == "TCP":
		proto = "tcp"
	case k.grpc:
		proto = "grpc"
	}
	grpcStatus := ""
	self := m.self
	lv := map[string]string{
		"reporter": reporter, "request_protocol": proto, "response_code": strconv.Itoa(k.code), "grpc_response_status": grpcStatus,
		"response_flags": k.flags, "connection_security_policy": security,
		"destination_service": or(svc, unknown), "destination_service_name": svcName, "destination_service_namespace": svcNS,
	}
	mine := map[string]string{"workload": or(self.Name, unknown), "workload_namespace": or(self.Namespace, unknown), "app": or(self.App, unknown),
		"version": or(self.Version, unknown), "canonical_service": or(self.App, unknown), "canonical_revision": or(self.Version, "latest"), "cluster": or(self.Cluster, unknown)}
	peer := map[string]string{"workload": unknown, "workload_namespace": peerNS, "app": unknown, "version": unknown, "canonical_service": unknown, "canonical_revision": "latest", "cluster": unknown}
	src, dst := peer, mine
	if reporter == "source" {
		src, dst = mine, peer
		dst["workload_namespace"] = svcNS
	}
	for k, v := range src {
		lv["source_"+k] = v
	}
	for k, v := range dst {
		lv["destination_"+k] = v
	}
	if reporter == "destination" {
		lv["source_principal"], lv["destination_principal"] = principal, unknown
	} else {
		lv["source_principal"], lv["destination_principal"] = unknown, principal
	}
	vals := make([]string, len(istioLabels))
	for i, l := range istioLabels {
		vals[i] = lv[l]
	}
	return &series{
		requests: m.requests.WithLabelValues(vals...), duration: m.duration.WithLabelValues(vals...),
		rq: m.reqBytes.WithLabelValues(vals...), rs: m.resBytes.WithLabelValues(vals...),
		open: m.tcpOpen.WithLabelValues(vals...), close: m.tcpClose.WithLabelValues(vals...),
		sent: m.tcpSent.WithLabelValues(vals...), recv: m.tcpRecv.WithLabelValues(vals...),
	}
}

// serviceOf extracts the service host from Istio's cluster names (outbound|80||svc.ns.svc.cluster.local).
func serviceOf(cluster string) string {
	parts := strings.Split(cluster, "|")
	if len(parts) == 4 {
		return parts[3]
	}
	return cluster
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
