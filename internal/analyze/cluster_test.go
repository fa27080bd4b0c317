package analyze

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Of the cluster's CRDs only the Gateway API's are kept, without their
// schemas, and other kinds are kept whole.
func TestKeepListed(t *testing.T) {
	crd := func(group string) map[string]any {
		return map[string]any{"spec": map[string]any{"group": group, "versions": []any{
			map[string]any{"name": "v1", "served": true, "schema": map[string]any{"openAPIV3Schema": map[string]any{}}},
		}}}
	}
	gw := crd("gateway.networking.k8s.io")
	if !keep(crdResource, gw) {
		t.Fatal("a Gateway API CRD was dropped")
	}
	v := gw["spec"].(map[string]any)["versions"].([]any)[0].(map[string]any)
	if _, ok := v["schema"]; ok || v["name"] != "v1" || v["served"] != true {
		t.Errorf("version kept as %v, want its name and served without the schema", v)
	}
	if keep(crdResource, crd("example.com")) {
		t.Error("another group's CRD was kept")
	}
	if !keep(schema.GroupVersionResource{Version: "v1", Resource: "services"}, map[string]any{}) {
		t.Error("a Service was dropped")
	}
}
