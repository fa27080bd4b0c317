package fallback

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// MetricsPath is where ServeMetrics answers.
const MetricsPath = "/metrics"

// ServeMetrics serves g's series in the Prometheus text format at GET
// /metrics on addr (host:port; port 0 picks a free one), as mesh-pilot
// serves its own on its monitoring port, until the returned server is
// closed. It returns once addr is listened on, with the address taken.
func ServeMetrics(addr string, g prometheus.Gatherer, log *slog.Logger) (*http.Server, net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("fallback agent metrics on %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Warn("fallback agent metrics server", "err", err)
		}
	}()
	return srv, ln.Addr(), nil
}
