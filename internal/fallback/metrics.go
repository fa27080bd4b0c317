package fallback

import (
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
)

// Metrics are the agent's Prometheus series.
type Metrics struct {
	fallbacks *prometheus.CounterVec
	vetoes    *prometheus.CounterVec
	active    *prometheus.GaugeVec
}

// NewMetrics registers the agent's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesh_sidecar_fallbacks_total",
			Help: "Times a pod's capture was switched to direct traffic because its proxy was down, by reason (ProxyExited, ProxyHung, ProxyNotReady)."},
			[]string{"namespace", "pod", "reason"}),
		vetoes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesh_sidecar_fallback_vetoes_total",
			Help: "Times a pod's proxy was down and security policy kept its capture (no fallback)."},
			[]string{"namespace", "pod"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mesh_sidecar_fallback_active",
			Help: "1 while the pod's traffic bypasses its proxy."}, []string{"namespace", "pod"}),
	}
	reg.MustRegister(m.fallbacks, m.vetoes, m.active)
	return m
}

func (m *Metrics) fellBack(p *corev1.Pod, reason string) {
	if m == nil {
		return
	}
	m.fallbacks.WithLabelValues(p.Namespace, p.Name, reason).Inc()
	m.active.WithLabelValues(p.Namespace, p.Name).Set(1)
}

func (m *Metrics) ended(p *corev1.Pod) {
	if m != nil {
		m.active.WithLabelValues(p.Namespace, p.Name).Set(0)
	}
}

func (m *Metrics) vetoed(p *corev1.Pod) {
	if m != nil {
		m.vetoes.WithLabelValues(p.Namespace, p.Name).Inc()
	}
}
