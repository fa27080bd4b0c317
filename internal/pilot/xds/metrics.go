package xds

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are pilot's xDS figures on /metrics (the monitoring port,
// 15014). Those Istio has carry Istio's names, labels and buckets, so
// Istio's control plane dashboard reads them unchanged; the mesh_pilot_*
// ones are mesh's own.
type Metrics struct {
	// Pushes is Istio's pilot_xds_pushes: responses sent, by type (cds, eds, lds, rds, sds, ecds).
	Pushes *prometheus.CounterVec
	// NACKs is Istio's pilot_total_xds_rejects, by type.
	NACKs *prometheus.CounterVec
	// Rejects are Istio's pilot_xds_{cds,eds,lds,rds}_reject: 1 per
	// proxy (node) and error while its latest answer of the type is a NACK.
	Rejects map[string]*prometheus.GaugeVec
	// Convergence is Istio's pilot_proxy_convergence_time: from a change
	// to the proxy having acknowledged every type it was sent for it.
	Convergence *prometheus.HistogramVec
	// ConvergeSeconds is the same per type (mesh's).
	ConvergeSeconds *prometheus.HistogramVec
	GenerateSeconds *prometheus.HistogramVec
	// ProxiesRegenerated and GroupsBuilt show how far a change reached:
	// proxies whose config was recomputed, and shared configs built afresh.
	ProxiesRegenerated *prometheus.CounterVec
	GroupsBuilt        *prometheus.CounterVec
	// ConnectedProxies is Istio's pilot_xds: connected proxies by the
	// version they report.
	ConnectedProxies *prometheus.GaugeVec
	InvalidConfigs   prometheus.Counter
	RejectedStreams  prometheus.Counter

	mu       sync.Mutex
	versions map[string]int
}

// NewMetrics creates the xDS metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes", Help: "xDS responses sent to proxies, by type (cds, eds, lds, rds, sds, ecds).",
		}, []string{"type"}),
		NACKs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects", Help: "xDS responses rejected by proxies (NACKs), by type.",
		}, []string{"type"}),
		Rejects: map[string]*prometheus.GaugeVec{},
		Convergence: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pilot_proxy_convergence_time",
			Help:    "Seconds from a config change to a proxy having acknowledged all the configuration it was sent for it.",
			Buckets: []float64{.1, .5, 1, 3, 5, 10, 20, 30},
		}, nil),
		ConvergeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mesh_pilot_proxy_convergence_seconds",
			Help:    "Time from a model change to the proxy acknowledging the new config, by type.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"type"}),
		GenerateSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mesh_pilot_push_generate_seconds",
			Help:    "Time to regenerate config for the affected proxies after a change, by push kind (full, config or eds).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		ProxiesRegenerated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_pilot_push_proxies_total", Help: "Proxies whose config was recomputed after a change, by push kind (full, config or eds).",
		}, []string{"kind"}),
		GroupsBuilt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_pilot_push_groups_built_total", Help: "Shared proxy configs generated afresh (not carried over) after a change, by push kind (full, config or eds).",
		}, []string{"kind"}),
		ConnectedProxies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pilot_xds", Help: "Proxies connected to this pilot over xDS, by the version they report.",
		}, []string{"version"}),
		InvalidConfigs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_pilot_invalid_configs_total", Help: "Generated configurations withheld because they failed validation.",
		}),
		RejectedStreams: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_pilot_xds_rejected_streams_total", Help: "xDS streams refused, e.g. for a malformed node id.",
		}),
		versions: map[string]int{},
	}
	for _, t := range []string{"cds", "eds", "lds", "rds"} {
		m.Rejects[t] = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pilot_xds_" + t + "_reject", Help: "Proxies whose latest " + strings.ToUpper(t) + " answer rejected pilot's config (1), by node and error.",
		}, []string{"node", "err"})
		reg.MustRegister(m.Rejects[t])
	}
	reg.MustRegister(m.Pushes, m.NACKs, m.Convergence, m.ConvergeSeconds, m.GenerateSeconds, m.ProxiesRegenerated, m.GroupsBuilt,
		m.ConnectedProxies, m.InvalidConfigs, m.RejectedStreams)
	return m
}

// metricType is Istio's type label of an xDS type URL: cds, eds, ...
func metricType(typeURL string) string { return strings.ToLower(ShortType(typeURL)) }

// connected counts a proxy of the version in (delta 1) or out (-1).
func (m *Metrics) connected(version string, delta int) {
	if version == "" {
		version = "unknown"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.versions[version] += delta
	if m.versions[version] <= 0 {
		delete(m.versions, version)
		m.ConnectedProxies.DeleteLabelValues(version)
		return
	}
	m.ConnectedProxies.WithLabelValues(version).Set(float64(m.versions[version]))
}

// rejected records node's answer to a type: a NACK with its error, or an
// ACK (errDetail "") that clears the node's earlier rejection.
func (m *Metrics) rejected(typeURL, node, errDetail string) {
	g := m.Rejects[metricType(typeURL)]
	if g == nil {
		return
	}
	g.DeletePartialMatch(prometheus.Labels{"node": node})
	if errDetail != "" {
		if len(errDetail) > 200 {
			errDetail = errDetail[:200]
		}
		g.WithLabelValues(node, errDetail).Set(1)
	}
}

// forget drops what is recorded of a node that left.
func (m *Metrics) forget(node string) {
	for _, g := range m.Rejects {
		g.DeletePartialMatch(prometheus.Labels{"node": node})
	}
}
