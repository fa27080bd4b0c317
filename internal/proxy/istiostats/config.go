package istiostats

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/anypb"
	statspb "istio.io/api/envoy/extensions/stats"

	"mesh.dev/mesh/internal/celexpr"
)

// ConfigType is the stats filter's config type, for the HTTP and the network filter alike.
const ConfigType = "type.googleapis.com/stats.PluginConfig"

// FilterName is the name istiod gives both filters.
const FilterName = "istio.stats"

// config is a compiled stats.PluginConfig.
type config struct {
	metrics         map[string]*metricConfig // by metric name; nil: dropped
	exprs           []*celexpr.Expr          // the added dimensions' expressions, each once
	noHostFallback  bool
	gatewayReporter bool
}

// metricConfig is what the overrides leave of one metric.
type metricConfig struct {
	remove map[string]bool
	dims   map[string]int // added dimension → index into config.dims
}

// compile reads a PluginConfig: metrics overrides (name, drop,
// tags_to_remove, dimensions as CEL expressions of the subset internal/celexpr
// evaluates), disable_host_header_fallback and reporter; the deprecated
// settings are accepted and have no effect, as in Istio's proxy.
func compile(a *anypb.Any, field string) (*config, error) {
	pc := &statspb.PluginConfig{}
	if err := a.UnmarshalTo(pc); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	c := &config{metrics: map[string]*metricConfig{}, noHostFallback: pc.GetDisableHostHeaderFallback(),
		gatewayReporter: pc.GetReporter() == statspb.Reporter_SERVER_GATEWAY}
	for _, n := range Names {
		c.metrics[n] = &metricConfig{}
	}
	switch pc.GetStatPrefix() {
	case "", "istio", "istio_":
	default:
		return nil, fmt.Errorf("%s.stat_prefix: %q is not supported (the metrics are named istio_*)", field, pc.GetStatPrefix())
	}
	// debug, max_peer_cache_size, field_separator, value_separator,
	// rotation_interval and graceful_deletion_interval shape how Envoy's
	// stats store holds the series, which has no equivalent here;
	// tcp_reporting_duration is moot since TCP bytes are counted as they are copied.
	if len(pc.GetDefinitions()) > 0 {
		return nil, fmt.Errorf("%s.definitions: custom metrics are not supported (only Istio's standard metrics are recorded)", field)
	}
	exprIndex := map[string]int{}
	for i, m := range pc.GetMetrics() {
		f := field + ".metrics[" + strconv.Itoa(i) + "]"
		if m.GetMatch() != "" {
			return nil, fmt.Errorf("%s.match: conditional overrides are not supported (Istio's proxy does not implement them either)", f)
		}
		names := Names
		if n := m.GetName(); n != "" {
			if !slices.Contains(Names, n) {
				return nil, fmt.Errorf("%s.name: unknown metric %q (known: %v)", f, n, Names)
			}
			names = []string{n}
		}
		keys := make([]string, 0, len(m.GetDimensions()))
		for k := range m.GetDimensions() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, n := range names {
			mc := c.metrics[n]
			if m.GetDrop() {
				c.metrics[n] = nil
				continue
			}
			if mc == nil {
				continue // dropped by an earlier entry
			}
			for _, t := range m.GetTagsToRemove() {
				if mc.remove == nil {
					mc.remove = map[string]bool{}
				}
				mc.remove[t] = true
				delete(mc.dims, t)
			}
			for _, k := range keys {
				src := m.GetDimensions()[k]
				idx, ok := exprIndex[src]
				if !ok {
					e, err := celexpr.Parse(src)
					if err != nil {
						return nil, fmt.Errorf("%s.dimensions[%s]: %w", f, k, err)
					}
					idx = len(c.exprs)
					c.exprs = append(c.exprs, e)
					exprIndex[src] = idx
				}
				if mc.dims == nil {
					mc.dims = map[string]int{}
				}
				mc.dims[k] = idx // an index into config.exprs
				delete(mc.remove, k)
			}
		}
	}
	return c, nil
}

// labels turns the standard label values (in Labels' order) and the
// evaluated expressions into name, value pairs for metric name.
func (c *config) labels(name string, std *[25]string, exprVals []string) []string {
	mc := c.metrics[name]
	out := make([]string, 0, 2*len(Labels)+2*len(mc.dims))
	tcp := strings.HasPrefix(name, "tcp_")
	for i, l := range Labels {
		if tcp && (l == "response_code" || l == "grpc_response_status") {
			continue // Istio's TCP metrics have no response labels
		}
		if mc.remove[l] {
			continue
		}
		if idx, ok := mc.dims[l]; ok {
			out = append(out, l, exprVals[idx]) // an override of a standard label
			continue
		}
		out = append(out, l, std[i])
	}
	extra := make([]string, 0, len(mc.dims))
	for k := range mc.dims {
		if !slices.Contains(Labels, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		out = append(out, k, exprVals[mc.dims[k]])
	}
	return out
}
