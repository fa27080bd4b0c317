package xds

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/pilot/model"
)

// TestEveryHCMNormalizesPaths: meshConfig.pathNormalization lands on every
// HTTP connection manager pilot writes (sidecar inbound and outbound,
// gateways) with istiod's mapping; unset is BASE.
func TestEveryHCMNormalizesPaths(t *testing.T) {
	type hcmPath struct {
		normalize, merge bool
		escaped          hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
	}
	keep := hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	for _, tc := range []struct {
		mesh *meshapi.MeshConfig
		want hcmPath
	}{
		{nil, hcmPath{true, false, keep}},
		{&meshapi.MeshConfig{PathNormalization: &meshapi.MeshConfig_ProxyPathNormalization{Normalization: meshapi.MeshConfig_ProxyPathNormalization_NONE}}, hcmPath{false, false, keep}},
		{&meshapi.MeshConfig{PathNormalization: &meshapi.MeshConfig_ProxyPathNormalization{Normalization: meshapi.MeshConfig_ProxyPathNormalization_BASE}}, hcmPath{true, false, keep}},
		{&meshapi.MeshConfig{PathNormalization: &meshapi.MeshConfig_ProxyPathNormalization{Normalization: meshapi.MeshConfig_ProxyPathNormalization_MERGE_SLASHES}}, hcmPath{true, true, keep}},
		{&meshapi.MeshConfig{PathNormalization: &meshapi.MeshConfig_ProxyPathNormalization{Normalization: meshapi.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES}}, hcmPath{true, true, hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD}},
	} {
		w, _ := bookinfo(t, "bookinfo-gateway.yaml")
		w.In.Mesh = tc.mesh
		pc := NewPushContext(model.Build(1, w.Input()))
		kinds := map[string]int{}
		for _, node := range []string{
			w.PodProxy(model.SidecarProxy, "productpage-v1"),
			model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system"),
		} {
			r := generate(t, pc, node)
			for _, it := range r.items(resourcev3.ListenerType) {
				l := it.msg.(*listenerv3.Listener)
				for _, fc := range append([]*listenerv3.FilterChain{l.DefaultFilterChain}, l.FilterChains...) {
					for _, f := range fc.GetFilters() {
						if f.Name != hcmFilterName {
							continue
						}
						var h hcmv3.HttpConnectionManager
						if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
							t.Fatal(err)
						}
						kinds[l.TrafficDirection.String()+" "+node[:strings.Index(node, "~")]]++
						got := hcmPath{h.GetNormalizePath().GetValue(), h.MergeSlashes, h.PathWithEscapedSlashesAction}
						if got != tc.want || h.NormalizePath == nil {
							t.Errorf("%v: %s listener %s HCM %s: %+v (normalize_path set: %v); want %+v", tc.mesh.GetPathNormalization(), node, l.Name, h.StatPrefix, got, h.NormalizePath != nil, tc.want)
						}
					}
				}
			}
		}
		for _, k := range []string{"INBOUND sidecar", "OUTBOUND sidecar", "OUTBOUND router"} {
			if kinds[k] == 0 {
				t.Errorf("no HCM seen on %s listeners (saw %v)", k, kinds)
			}
		}
	}
}
