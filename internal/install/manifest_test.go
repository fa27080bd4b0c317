package install

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/kube"
)

func u(apiVersion, kind, ns, name string, labels map[string]string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion(apiVersion)
	o.SetKind(kind)
	o.SetNamespace(ns)
	o.SetName(name)
	o.SetLabels(labels)
	return o
}

func TestPrepareLabelsSharedAndRevisionObjects(t *testing.T) {
	rendered := map[string]string{kube.LabelRevision: "canary"}
	crd := u("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "virtualservices.networking.istio.io", rendered)
	dep := u("apps/v1", "Deployment", "mesh-system", "mesh-pilot-canary", nil)
	m := Prepare("canary", []Component{{Name: "base", Objects: []*unstructured.Unstructured{crd}}, {Name: "pilot", Objects: []*unstructured.Unstructured{dep}}})

	gotCRD := m.Components[0].Objects[0].GetLabels()
	if _, ok := gotCRD[kube.LabelRevision]; ok {
		t.Errorf("CRD keeps the revision label %v: uninstalling canary would take it from other revisions", gotCRD)
	}
	if gotCRD[kube.LabelPartOf] != kube.PartOfMesh {
		t.Errorf("CRD lacks %s: %v", kube.LabelPartOf, gotCRD)
	}
	gotDep := m.Components[1].Objects[0].GetLabels()
	if gotDep[kube.LabelRevision] != "canary" || gotDep[kube.LabelComponent] != "pilot" {
		t.Errorf("deployment labels %v, want revision canary and component pilot", gotDep)
	}
	if _, ok := crd.GetLabels()[kube.LabelRevision]; !ok {
		t.Error("Prepare changed the rendered object instead of a copy")
	}
	if ns, err := m.Namespace(); err != nil || ns != "mesh-system" {
		t.Errorf("Namespace() = %q, %v", ns, err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	kinds := []schema.GroupVersionKind{{Group: "apps", Version: "v1", Kind: "Deployment"}, {Group: "install.mesh.io", Version: "v1alpha1", Kind: "MeshOperator"}, {Version: "v1", Kind: "Service"}}
	o := recordObject("canary", "mesh-system", State{Version: "1.2.3", Spec: map[string]any{"profile": "demo"}}, kinds)
	if o.GetName() != "installed-state-canary" {
		t.Errorf("record name %s", o.GetName())
	}
	r := parseRecord(o)
	if r.Revision != "canary" || r.Version != "1.2.3" || r.Spec["profile"] != "demo" || len(r.Kinds) != 3 {
		t.Fatalf("round trip lost data: %+v", r)
	}
	for _, k := range kinds {
		found := false
		for _, g := range r.Kinds {
			found = found || g == k
		}
		if !found {
			t.Errorf("kind %v lost in the record: %v", k, r.Kinds)
		}
	}
}
