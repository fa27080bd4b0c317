package sampleapp_test

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/sandbox/sampleapp"
)

func TestMapBookinfoFixture(t *testing.T) {
	in, err := os.ReadFile("../../../../shared/fixtures/bookinfo/bookinfo.yaml")
	if err != nil {
		t.Skipf("fixture not available: %v", err)
	}
	out, n, err := sampleapp.MapBookinfo(in, "mesh.dev/mesh-sample:test")
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("replaced %d images, want 6 (productpage, details, ratings, reviews v1-v3)", n)
	}
	want := map[string]string{"productpage-v1": "--role=productpage --version=v1", "details-v1": "--role=details --version=v1",
		"ratings-v1": "--role=ratings --version=v1", "reviews-v1": "--role=reviews --version=v1",
		"reviews-v2": "--role=reviews --version=v2", "reviews-v3": "--role=reviews --version=v3"}
	for _, doc := range strings.Split(string(out), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("rewritten manifest does not parse: %v\n%s", err, doc)
		}
		if d.Kind != "Deployment" {
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if c.Image != "mesh.dev/mesh-sample:test" || strings.Join(c.Args, " ") != want[d.Name] {
			t.Errorf("%s: image %q args %q, want the sample app with %q", d.Name, c.Image, c.Args, want[d.Name])
		}
		if len(c.VolumeMounts) == 0 && strings.HasPrefix(d.Name, "reviews") {
			t.Errorf("%s: the rest of the container was lost", d.Name)
		}
		delete(want, d.Name)
	}
	if len(want) > 0 {
		t.Errorf("deployments missing after the rewrite: %v", want)
	}
}

func TestMapBookinfoNothingToMap(t *testing.T) {
	if _, _, err := sampleapp.MapBookinfo([]byte("kind: Service\n"), "x"); err == nil {
		t.Error("a manifest without Bookinfo images gave no error")
	}
}
