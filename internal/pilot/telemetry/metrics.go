package telemetry

import (
	"fmt"
	"sort"
	"strings"

	statspb "istio.io/api/envoy/extensions/stats"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
)

// Metrics is the stats filter config of one listener class of a proxy
// (Istio's stats.PluginConfig), with a key equal exactly when the configs
// are. Config is nil when Prometheus metrics are off for the class.
type Metrics struct {
	Config *statspb.PluginConfig
	Key    string
}

// The stats filter's names of Istio's standard metrics, by the Telemetry API's selector.
var metricNames = map[telemetryapi.MetricSelector_IstioMetric]string{
	telemetryapi.MetricSelector_REQUEST_COUNT:          "requests_total",
	telemetryapi.MetricSelector_REQUEST_DURATION:       "request_duration_milliseconds",
	telemetryapi.MetricSelector_REQUEST_SIZE:           "request_bytes",
	telemetryapi.MetricSelector_RESPONSE_SIZE:          "response_bytes",
	telemetryapi.MetricSelector_TCP_OPENED_CONNECTIONS: "tcp_connections_opened_total",
	telemetryapi.MetricSelector_TCP_CLOSED_CONNECTIONS: "tcp_connections_closed_total",
	telemetryapi.MetricSelector_TCP_SENT_BYTES:         "tcp_sent_bytes_total",
	telemetryapi.MetricSelector_TCP_RECEIVED_BYTES:     "tcp_received_bytes_total",
}

// standardMetrics lists metricNames' values in a stable order.
var standardMetrics = []string{"requests_total", "request_duration_milliseconds", "request_bytes", "response_bytes",
	"tcp_connections_opened_total", "tcp_connections_closed_total", "tcp_sent_bytes_total", "tcp_received_bytes_total"}

// metricState is what the overrides leave of one metric.
type metricState struct {
	disabled bool
	tags     map[string]*string // tag → value expression; nil value: removed
}

// Metrics resolves w's Prometheus metrics for listeners of class c, as
// Istio does: the metrics providers are the Telemetry entries' (least
// specific first, a later entry's providers replacing an earlier one's),
// else meshConfig defaultProviders.metrics, else Istio's built-in
// prometheus; when one of them is a Prometheus provider, the overrides of
// the entries naming it (or naming none) apply in order, each override
// whose match mode takes in c setting disabled and tag overrides
// (UPSERT value, REMOVE) for its metric or all of them.
func (p *Policy) Metrics(w Workload, c Class) Metrics {
	var providers []string
	var overrides []*telemetryapi.MetricsOverrides
	for _, t := range p.applicable(w) {
		for _, m := range t.Spec.GetMetrics() {
			if len(m.GetProviders()) > 0 {
				providers = providers[:0]
				for _, pr := range m.GetProviders() {
					providers = append(providers, pr.GetName())
				}
				if !p.anyPrometheus(providers) {
					continue
				}
			}
			overrides = append(overrides, m.GetOverrides()...)
		}
	}
	if providers == nil {
		providers = p.Mesh.GetDefaultProviders().GetMetrics()
	}
	if len(providers) > 0 && !p.anyPrometheus(providers) {
		return Metrics{Key: "off"}
	}
	state := map[string]*metricState{}
	for _, n := range standardMetrics {
		state[n] = &metricState{}
	}
	for _, o := range overrides {
		if !c.matches(o.GetMatch().GetMode()) || o.GetMatch().GetCustomMetric() != "" {
			continue
		}
		var names []string
		switch m := o.GetMatch().GetMetric(); {
		case m == telemetryapi.MetricSelector_ALL_METRICS:
			names = standardMetrics
		case metricNames[m] != "":
			names = []string{metricNames[m]}
		default:
			continue // gRPC message counts: reported by Problems
		}
		for _, n := range names {
			st := state[n]
			if d := o.GetDisabled(); d != nil {
				st.disabled = d.GetValue()
			}
			for tag, to := range o.GetTagOverrides() {
				if st.tags == nil {
					st.tags = map[string]*string{}
				}
				if to.GetOperation() == telemetryapi.MetricsOverrides_TagOverride_REMOVE {
					st.tags[tag] = nil
				} else if v := to.GetValue(); checkCEL(v) == nil {
					st.tags[tag] = &v // one the proxy cannot evaluate is left out (Problems says so)
				}
			}
		}
	}
	pc := &statspb.PluginConfig{}
	var key strings.Builder
	for _, n := range standardMetrics {
		st := state[n]
		switch {
		case st.disabled:
			pc.Metrics = append(pc.Metrics, &statspb.MetricConfig{Name: n, Drop: true})
			fmt.Fprintf(&key, "%s:drop;", n)
		case len(st.tags) > 0:
			mc := &statspb.MetricConfig{Name: n}
			tags := make([]string, 0, len(st.tags))
			for t := range st.tags {
				tags = append(tags, t)
			}
			sort.Strings(tags)
			fmt.Fprintf(&key, "%s:", n)
			for _, t := range tags {
				if v := st.tags[t]; v == nil {
					mc.TagsToRemove = append(mc.TagsToRemove, t)
					fmt.Fprintf(&key, "-%s,", t)
				} else {
					if mc.Dimensions == nil {
						mc.Dimensions = map[string]string{}
					}
					mc.Dimensions[t] = *v
					fmt.Fprintf(&key, "+%s=%q,", t, *v)
				}
			}
			pc.Metrics = append(pc.Metrics, mc)
			key.WriteString(";")
		}
	}
	if c == Gateway {
		// A gateway's Host header comes from outside the mesh: never a service name.
		pc.DisableHostHeaderFallback = true
	}
	return Metrics{Config: pc, Key: "on:" + key.String()}
}

// anyPrometheus reports whether one of the named providers is a Prometheus
// one: the built-in prometheus, or an extensionProviders entry with prometheus.
func (p *Policy) anyPrometheus(names []string) bool {
	for _, n := range names {
		if n == "prometheus" {
			return true
		}
		for _, pr := range p.Mesh.GetExtensionProviders() {
			if pr.GetName() == n && pr.GetPrometheus() != nil {
				return true
			}
		}
	}
	return false
}

// metricsProblems names the parts of spec.metrics pilot cannot carry out.
func (p *Policy) metricsProblems(id string, t *telemetryv1.Telemetry) []Problem {
	var out []Problem
	for i, m := range t.Spec.GetMetrics() {
		f := fmt.Sprintf("spec.metrics[%d]", i)
		for j, pr := range m.GetProviders() {
			if !p.anyPrometheus([]string{pr.GetName()}) {
				out = append(out, Problem{id, fmt.Sprintf("%s.providers[%d]", f, j),
					fmt.Sprintf("provider %q is not a Prometheus provider; only Prometheus metrics are served (on the proxy's /stats/prometheus)", pr.GetName())})
			}
		}
		if m.GetReportingInterval() != nil {
			out = append(out, Problem{id, f + ".reportingInterval", "not carried out: TCP byte counts are updated as data flows"})
		}
		for j, o := range m.GetOverrides() {
			of := fmt.Sprintf("%s.overrides[%d].match", f, j)
			if o.GetMatch().GetCustomMetric() != "" {
				out = append(out, Problem{id, of + ".customMetric", "custom metrics are not supported; the override applies to nothing"})
			}
			if mm := o.GetMatch().GetMetric(); mm == telemetryapi.MetricSelector_GRPC_REQUEST_MESSAGES || mm == telemetryapi.MetricSelector_GRPC_RESPONSE_MESSAGES {
				out = append(out, Problem{id, of + ".metric", mm.String() + " is not recorded; the override applies to nothing"})
			}
			for tag, to := range o.GetTagOverrides() {
				if to.GetOperation() != telemetryapi.MetricsOverrides_TagOverride_REMOVE {
					if err := checkCEL(to.GetValue()); err != nil {
						out = append(out, Problem{id, fmt.Sprintf("%s.overrides[%d].tagOverrides[%s].value", f, j, tag), err.Error() + "; the tag override is left out"})
					}
				}
			}
		}
	}
	return out
}
