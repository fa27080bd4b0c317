package xds

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/telemetry"
)

// accessLogCounts counts, per listener direction and filter kind, the HCMs
// and TCP proxies of a proxy's listeners with and without access logs.
func accessLogCounts(t *testing.T, r *Resources) (with, without map[string]int) {
	t.Helper()
	with, without = map[string]int{}, map[string]int{}
	for _, it := range r.items(resourcev3.ListenerType) {
		l := it.msg.(*listenerv3.Listener)
		chains := append([]*listenerv3.FilterChain{l.DefaultFilterChain}, l.FilterChains...)
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				n := 0
				switch f.Name {
				case hcmFilterName:
					var h hcmv3.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
						t.Fatal(err)
					}
					n = len(h.AccessLog)
				case tcpProxyFilterName:
					var tp tcpproxy.TcpProxy
					if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
						t.Fatal(err)
					}
					n = len(tp.AccessLog)
				default:
					continue
				}
				k := l.TrafficDirection.String() + " " + strings.TrimPrefix(f.Name, "envoy.filters.network.")
				if n > 0 {
					with[k]++
				} else {
					without[k]++
				}
			}
		}
	}
	return with, without
}

// TestAccessLogsOnEveryHCMAndTCPProxy: with meshConfig accessLogFile every
// HTTP connection manager and TCP proxy of sidecars (both directions) and
// gateways logs, as in Istio; a Telemetry disabling logs for one workload's
// server side leaves its outbound side and the other workloads logging.
func TestAccessLogsOnEveryHCMAndTCPProxy(t *testing.T) {
	w, _ := bookinfo(t, "bookinfo-gateway.yaml")
	mc, err := telemetry.ParseMesh([]byte("accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n"), "mesh")
	if err != nil {
		t.Fatal(err)
	}
	w.In.Mesh = mc
	if err := w.AddYAML([]byte(`apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-quiet, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging: [{match: {mode: SERVER}, disabled: true}]
`)); err != nil {
		t.Fatal(err)
	}
	pc := NewPushContext(model.Build(1, w.Input()))
	gw := model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system")
	for _, tc := range []struct {
		node    string
		logged  []string
		silent  []string
		nothing string
	}{
		{w.PodProxy(model.SidecarProxy, "productpage-v1"), []string{"INBOUND http_connection_manager", "INBOUND tcp_proxy", "OUTBOUND http_connection_manager", "OUTBOUND tcp_proxy"}, nil, ""},
		{w.PodProxy(model.SidecarProxy, "reviews-v1"), []string{"OUTBOUND http_connection_manager", "OUTBOUND tcp_proxy"}, []string{"INBOUND http_connection_manager", "INBOUND tcp_proxy"}, "INBOUND"},
		{gw, []string{"OUTBOUND http_connection_manager"}, nil, ""},
	} {
		with, without := accessLogCounts(t, generate(t, pc, tc.node))
		for _, k := range tc.logged {
			if with[k] == 0 {
				t.Errorf("%s: no %s with an access log (with %v, without %v)", tc.node, k, with, without)
			}
		}
		for k, n := range without {
			if tc.nothing == "" || !strings.HasPrefix(k, tc.nothing) {
				t.Errorf("%s: %d %s without an access log", tc.node, n, k)
			}
		}
		for _, k := range tc.silent {
			if with[k] > 0 || without[k] == 0 {
				t.Errorf("%s: %s should be there and silent (with %v, without %v)", tc.node, k, with, without)
			}
		}
	}
}
