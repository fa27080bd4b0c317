package resource

import (
	"sync"

	meshapi "istio.io/api/mesh/v1alpha1"
)

var meshConfigKeys = sync.OnceValue(func() map[string]bool {
	keys := map[string]bool{}
	fields := (&meshapi.MeshConfig{}).ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		keys[f.JSONName()] = true
		keys[string(f.Name())] = true
	}
	return keys
})

// meshFileHint says what to do with a document that is not a Kubernetes
// object but a MeshConfig or MeshNetworks file given among the inputs,
// which users of istioctl analyze pass with a flag; "" for anything else.
func meshFileHint(obj map[string]any) string {
	if len(obj) == 0 {
		return ""
	}
	if _, ok := obj["networks"]; ok && len(obj) == 1 {
		return "this is a MeshNetworks file (mesh.v1alpha1.MeshNetworks), not a Kubernetes object: give it with --meshNetworksFile FILE"
	}
	keys := meshConfigKeys()
	for k := range obj {
		if !keys[k] {
			return ""
		}
	}
	return "this is a MeshConfig file (mesh.v1alpha1.MeshConfig), not a Kubernetes object: give it with --meshConfigFile FILE"
}
