package xds

import (
	"fmt"
	"sync"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	statspb "istio.io/api/envoy/extensions/stats"

	"mesh.dev/mesh/internal/pilot/telemetry"
)

// Access logs and tracing are added to listeners once they are built: logs
// on every HTTP connection manager and TCP proxy, tracing on every HTTP
// connection manager, as Istio configures them. The listener builders stay
// unaware of telemetry, and the shared outbound listeners of a scope are
// decorated once per distinct config.

// observe is what telemetry adds to one listener class of a proxy.
type observe struct {
	logs    []*accesslogv3.AccessLog
	tracing *hcmv3.HttpConnectionManager_Tracing
	stats   *statspb.PluginConfig // Istio's metrics: the stats and metadata exchange filters (nil: metrics off)
	class   telemetry.Class
	key     string
}

func (o observe) empty() bool { return len(o.logs) == 0 && o.tracing == nil && o.stats == nil }

func (pc *PushContext) observe(w *workload, c telemetry.Class) observe {
	tw := telemetry.Workload{Namespace: w.namespace, Labels: w.labels}
	al, tr, m := pc.tel.AccessLogs(tw, c), pc.tel.Tracing(tw, c), pc.tel.Metrics(tw, c)
	return observe{logs: al.Logs, tracing: tr.HCM, stats: m.Config, class: c, key: al.Key + "|t:" + tr.Key + "|m:" + m.Key}
}

// telemetryKey is the part of a group key telemetry decides.
func (pc *PushContext) telemetryKey(w *workload, classes ...telemetry.Class) string {
	key := ""
	for _, c := range classes {
		key += fmt.Sprintf("|obs%d:%s", c, pc.observe(w, c).key)
	}
	return key
}

// loggedListeners are a scope's outbound listeners with telemetry added,
// by the observe key.
type loggedListeners struct {
	mu    sync.Mutex
	byKey map[string]*lazy[[]*item]
}

// scopeListeners returns the scope's outbound listeners carrying o.
func (pc *PushContext) scopeListeners(sc *scope, lbls map[string]string, o observe) []*item {
	shared := pc.scopeShared(sc, lbls).listeners
	if o.empty() {
		return shared
	}
	key := o.key
	if pc.l4SourceLabels {
		key += "|l:" + labelKey(lbls)
	}
	ll := &sc.logged
	ll.mu.Lock()
	if ll.byKey == nil {
		ll.byKey = map[string]*lazy[[]*item]{}
	}
	ll.mu.Unlock()
	return memo(&ll.mu, ll.byKey, key, func() []*item { return withObserve(shared, o) })
}

// withObserve returns copies of listener items with o on their filters.
func withObserve(its []*item, o observe) []*item {
	if o.empty() {
		return its
	}
	out := make([]*item, len(its))
	for i, it := range its {
		l := proto.Clone(it.msg).(*listenerv3.Listener)
		addObserve(l, o)
		out[i] = newItem(it.name, l)
	}
	return out
}

// observeListeners puts o on every listener of r (a gateway's).
func observeListeners(r *Resources, o observe) {
	r.byType[resourcev3.ListenerType] = withObserve(r.byType[resourcev3.ListenerType], o)
}

// addObserve sets o's logs on the HTTP connection managers and TCP proxies
// of l's filter chains, and its tracing on the HTTP connection managers.
func addObserve(l *listenerv3.Listener, o observe) {
	if o.empty() {
		return
	}
	logs := o.logs
	chains := l.FilterChains
	if l.DefaultFilterChain != nil {
		chains = append(chains[:len(chains):len(chains)], l.DefaultFilterChain)
	}
	var statsAt []*listenerv3.FilterChain
	for _, fc := range chains {
		for _, f := range fc.Filters {
			tc := f.GetTypedConfig()
			switch f.GetName() {
			case hcmFilterName:
				h := &hcmv3.HttpConnectionManager{}
				if tc.UnmarshalTo(h) == nil {
					h.AccessLog = append(h.AccessLog, logs...)
					if h.Tracing == nil {
						h.Tracing = o.tracing
					}
					if o.stats != nil {
						h.HttpFilters = withStatsFilters(h.HttpFilters, o)
					}
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}
				}
			case genericProxyFilterName:
				if o.stats != nil {
					statsAt = append(statsAt, fc)
				}
				gp := &gpv3.GenericProxy{}
				if len(logs) > 0 && tc.UnmarshalTo(gp) == nil {
					gp.AccessLog = append(gp.AccessLog, logs...)
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(gp)}
				}
			case tcpProxyFilterName:
				if o.stats != nil {
					statsAt = append(statsAt, fc)
				}
				tp := &tcpproxy.TcpProxy{}
				if len(logs) > 0 && tc.UnmarshalTo(tp) == nil {
					tp.AccessLog = append(tp.AccessLog, logs...)
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}
				}
			}
		}
	}
	for _, fc := range statsAt {
		withTCPStats(fc, o)
	}
}
