package analyzers

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/crdschema"
	"mesh.dev/mesh/internal/pilot/model"
)

// Every Gateway API kind whose CRD the base chart ships is either read by
// pilot (a row of its kind table) or MSH0004 here, never both: when pilot
// learns a kind, this test says to take it out of unsupportedKinds.
func TestGatewayAPIKindsReadOrReported(t *testing.T) {
	crds, err := crdschema.GatewayAPICRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		spec, _ := crd["spec"].(map[string]any)
		names, _ := spec["names"].(map[string]any)
		group, _ := spec["group"].(string)
		kind, _ := names["kind"].(string)
		read := model.KindOf(schema.GroupKind{Group: group, Kind: kind}) != nil
		_, reported := unsupportedKinds[group+"/"+kind]
		listed := false
		for _, k := range unsupportedKindNames {
			listed = listed || k == kind
		}
		switch {
		case read && reported:
			t.Errorf("%s/%s is read by pilot now: take it out of unsupportedKinds", group, kind)
		case !read && (!reported || !listed):
			t.Errorf("%s/%s is shipped but pilot does not read it: add it to unsupportedKinds and unsupportedKindNames (MSH0004)", group, kind)
		}
	}
}
