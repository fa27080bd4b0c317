package xds

import "github.com/prometheus/client_golang/prometheus"

// Metrics are pilot's xDS figures on /metrics.
type Metrics struct {
	Pushes          *prometheus.CounterVec
	NACKs           *prometheus.CounterVec
	ConvergeSeconds *prometheus.HistogramVec
	GenerateSeconds *prometheus.HistogramVec
	// ProxiesRegenerated and GroupsBuilt show how far a change reached:
	// proxies whose config was recomputed, and shared configs built afresh.
	ProxiesRegenerated *prometheus.CounterVec
	GroupsBuilt        *prometheus.CounterVec
	ConnectedProxies   prometheus.Gauge
	InvalidConfigs     prometheus.Counter
	RejectedStreams    prometheus.Counter
}

// NewMetrics creates the xDS metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_pilot_xds_pushes_total", Help: "xDS responses sent to proxies, by type.",
		}, []string{"type"}),
		NACKs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_pilot_xds_nacks_total", Help: "Configuration rejected by proxies, by type.",
		}, []string{"type"}),
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
		ConnectedProxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mesh_pilot_xds_connected_proxies", Help: "Proxies with an open xDS stream.",
		}),
		InvalidConfigs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_pilot_invalid_configs_total", Help: "Generated configurations withheld because they failed validation.",
		}),
		RejectedStreams: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mesh_pilot_xds_rejected_streams_total", Help: "xDS streams refused, e.g. for a malformed node id.",
		}),
	}
	reg.MustRegister(m.Pushes, m.NACKs, m.ConvergeSeconds, m.GenerateSeconds, m.ProxiesRegenerated, m.GroupsBuilt, m.ConnectedProxies, m.InvalidConfigs, m.RejectedStreams)
	return m
}
