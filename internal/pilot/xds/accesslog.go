package xds

import (
	"fmt"
	"sync"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"mesh.dev/mesh/internal/pilot/telemetry"
)

// Access logs are added to listeners once they are built, on every HTTP
// connection manager and TCP proxy of them, as Istio configures both: the
// listener builders stay unaware of telemetry, and the shared outbound
// listeners of a scope are decorated once per distinct logging config.

// telemetryKey is the part of a group key telemetry decides.
func (pc *PushContext) telemetryKey(w *workload, classes ...telemetry.Class) string {
	key := ""
	for _, c := range classes {
		key += fmt.Sprintf("|al%d:%s", c, pc.accessLogs(w, c).Key)
	}
	return key
}

func (pc *PushContext) accessLogs(w *workload, c telemetry.Class) telemetry.AccessLogs {
	return pc.tel.AccessLogs(telemetry.Workload{Namespace: w.namespace, Labels: w.labels}, c)
}

// loggedListeners are a scope's outbound listeners with access logs,
// by the logs' key.
type loggedListeners struct {
	mu    sync.Mutex
	byKey map[string]*lazy[[]*item]
}

// scopeListeners returns the scope's outbound listeners carrying logs.
func (pc *PushContext) scopeListeners(sc *scope, logs telemetry.AccessLogs) []*item {
	shared := pc.scopeShared(sc).listeners
	if len(logs.Logs) == 0 {
		return shared
	}
	ll := &sc.logged
	ll.mu.Lock()
	if ll.byKey == nil {
		ll.byKey = map[string]*lazy[[]*item]{}
	}
	ll.mu.Unlock()
	return memo(&ll.mu, ll.byKey, logs.Key, func() []*item { return withLogs(shared, logs.Logs) })
}

// withLogs returns copies of listener items with logs on their filters.
func withLogs(its []*item, logs []*accesslogv3.AccessLog) []*item {
	if len(logs) == 0 {
		return its
	}
	out := make([]*item, len(its))
	for i, it := range its {
		l := proto.Clone(it.msg).(*listenerv3.Listener)
		addAccessLogs(l, logs)
		out[i] = newItem(it.name, l)
	}
	return out
}

// logListeners puts logs on every listener of r (a gateway's).
func logListeners(r *Resources, logs []*accesslogv3.AccessLog) {
	r.byType[resourcev3.ListenerType] = withLogs(r.byType[resourcev3.ListenerType], logs)
}

// addAccessLogs sets logs on the HTTP connection managers and TCP proxies
// of l's filter chains.
func addAccessLogs(l *listenerv3.Listener, logs []*accesslogv3.AccessLog) {
	if len(logs) == 0 {
		return
	}
	chains := l.FilterChains
	if l.DefaultFilterChain != nil {
		chains = append(chains[:len(chains):len(chains)], l.DefaultFilterChain)
	}
	for _, fc := range chains {
		for _, f := range fc.Filters {
			tc := f.GetTypedConfig()
			switch f.GetName() {
			case hcmFilterName:
				h := &hcmv3.HttpConnectionManager{}
				if tc.UnmarshalTo(h) == nil {
					h.AccessLog = append(h.AccessLog, logs...)
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}
				}
			case tcpProxyFilterName:
				tp := &tcpproxy.TcpProxy{}
				if tc.UnmarshalTo(tp) == nil {
					tp.AccessLog = append(tp.AccessLog, logs...)
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}
				}
			}
		}
	}
}
