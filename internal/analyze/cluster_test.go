package analyze

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/pilot/model"
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

// A live analysis lists every kind pilot reads and analyze checks (the
// kind table's rows with an analyzer kind), each resource once; a kind it
// leaves out is one of the table's, with the reason.
func TestClusterListsEveryKindPilotReads(t *testing.T) {
	listed := map[schema.GroupVersionResource]bool{}
	for _, gvr := range clusterResources {
		if listed[gvr] {
			t.Errorf("%s is listed twice", gvr)
		}
		listed[gvr] = true
	}
	table := map[string]bool{}
	for _, k := range model.Kinds {
		table[k.AnalyzerKind] = true
		gvr := k.GVK.GroupVersion().WithResource(k.Plural)
		if k.AnalyzerKind != "" && notListed[k.AnalyzerKind] == "" && !listed[gvr] {
			t.Errorf("pilot reads %s and analyze checks it, but a live analysis does not list %s", k, gvr)
		}
	}
	for kind := range notListed {
		if !table[kind] {
			t.Errorf("notListed names %s, no analyzer kind of pilot's table", kind)
		}
	}
	if !listed[schema.GroupVersionResource{Group: "networking.mesh.io", Version: "v1alpha1", Resource: "metaroutes"}] {
		t.Error("MetaRoutes are not listed")
	}
}
