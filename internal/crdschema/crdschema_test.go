package crdschema

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestTemplateUpToDate fails when the chart's CRD template no longer matches the API types.
func TestTemplateUpToDate(t *testing.T) {
	want, err := Template()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "manifests", "charts", "base", "templates", "crds.yaml")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go generate ./manifests", path)
	}
}

// TestCRDsValidate runs every CRD through the API server's own CRD
// validation, which rejects schemas that are not structural.
func TestCRDsValidate(t *testing.T) {
	for _, c := range All() {
		t.Run(c.Name(), func(t *testing.T) {
			obj := map[string]any{
				"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
				"metadata": map[string]any{"name": c.Name()},
				"spec":     c.Object(),
			}
			b, _ := json.Marshal(obj)
			var v1 apiextv1.CustomResourceDefinition
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v1); err != nil {
				t.Fatalf("not a v1 CRD: %v", err)
			}
			apiextv1.SetObjectDefaults_CustomResourceDefinition(&v1)
			var internal apiextensions.CustomResourceDefinition
			if err := apiextv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1, &internal, nil); err != nil {
				t.Fatal(err)
			}
			internal.ObjectMeta = metav1.ObjectMeta{Name: c.Name()}
			if errs := validation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
				for _, e := range errs {
					t.Error(e)
				}
			}
		})
	}
}

func TestSchemasFollowAPI(t *testing.T) {
	byName := map[string]CRD{}
	for _, c := range All() {
		byName[c.Name()] = c
	}
	vs := byName["virtualservices.networking.istio.io"].Spec
	http := vs["properties"].(Schema)["http"].(Schema)
	if http["type"] != "array" {
		t.Fatalf("VirtualService spec.http = %v, want an array", http)
	}
	route := http["items"].(Schema)["properties"].(Schema)["route"].(Schema)["items"].(Schema)["properties"].(Schema)
	if route["weight"].(Schema)["type"] != "integer" {
		t.Errorf("route weight = %v, want an integer", route["weight"])
	}
	timeout := http["items"].(Schema)["properties"].(Schema)["timeout"].(Schema)
	if timeout["type"] != "string" {
		t.Errorf("timeout (a Duration) = %v, want a string", timeout)
	}
	mode := byName["peerauthentications.security.istio.io"].Spec["properties"].(Schema)["mtls"].(Schema)["properties"].(Schema)["mode"].(Schema)
	if len(mode["enum"].([]any)) < 3 {
		t.Errorf("PeerAuthentication mtls.mode enum = %v", mode["enum"])
	}
	mo := byName["meshoperators.install.mesh.io"].Spec["properties"].(Schema)
	if mo["values"].(Schema)["x-kubernetes-preserve-unknown-fields"] != true {
		t.Errorf("MeshOperator spec.values must accept any values: %v", mo["values"])
	}
}

// TestGatewayAPITemplateUpToDate fails when the chart's Gateway API CRDs are
// not those of the sigs.k8s.io/gateway-api version in go.mod.
func TestGatewayAPITemplateUpToDate(t *testing.T) {
	want, err := GatewayAPITemplate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "manifests", "charts", "base", "templates", "gateway-api-crds.yaml")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go generate ./manifests", path)
	}
}
