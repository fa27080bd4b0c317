package manifest

import (
	"strings"
	"testing"
)

const before = `# leading comment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: app
        image: web:1
      - name: side
        image: proxy:1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: old
  namespace: shop
`

const after = `apiVersion: v1
kind: ConfigMap
metadata:
  name: new
  namespace: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2.0
  template:
    spec:
      containers:
      - name: side
        image: proxy:1
      - name: app
        image: web:2
        env:
        - name: A
          value: b
`

func TestCompare(t *testing.T) {
	a, err := Parse("before.yaml", []byte(before))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("after.yaml", []byte(after))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Added, ",") != "ConfigMap shop/new" || strings.Join(d.Removed, ",") != "ConfigMap shop/old" {
		t.Errorf("added %v removed %v", d.Added, d.Removed)
	}
	if len(d.Changed) != 1 || d.Changed[0].Key != "apps/Deployment shop/web" {
		t.Fatalf("changed = %+v, want only the Deployment (the Service is the same, order is ignored)", d.Changed)
	}
	var paths []string
	for _, f := range d.Changed[0].Fields {
		paths = append(paths, f.Path)
	}
	want := "spec.replicas,spec.template.spec.containers[name:app].env,spec.template.spec.containers[name:app].image"
	if strings.Join(paths, ",") != want {
		t.Errorf("changed fields = %v, want %s", paths, want)
	}
}

func TestCompareNumbers(t *testing.T) {
	a, _ := Parse("a", []byte("apiVersion: v1\nkind: X\nmetadata: {name: nm}\nspec: {r: 2}\n"))
	b, _ := Parse("b", []byte(`{"apiVersion": "v1", "kind": "X", "metadata": {"name": "nm"}, "spec": {"r": 2.0}}`))
	d, _ := Compare(a, b)
	if !d.Empty() {
		t.Errorf("2 and 2.0 reported as different: %+v", d)
	}
}

func TestParseErrorsNameLine(t *testing.T) {
	_, err := Parse("m.yaml", []byte("apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\nmetadata:\n  name: b\n  labels: {x: [}\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "m.yaml:") {
		t.Fatalf("error = %v, want it to start with m.yaml:<line>", err)
	}
	line := strings.Split(err.Error(), ":")[1]
	if line == "1" {
		t.Errorf("error %v points at the first document, want the second", err)
	}
	_, err = Parse("m.yaml", []byte("just a string\n"))
	if err == nil {
		t.Fatal("a scalar document parsed as an object")
	}
}

func TestCompareDuplicate(t *testing.T) {
	a, _ := Parse("a", []byte("apiVersion: v1\nkind: X\nmetadata: {name: nm}\n---\napiVersion: v1\nkind: X\nmetadata: {name: nm}\n"))
	if _, err := Compare(a, nil); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate objects: err = %v", err)
	}
}

func TestLineDiff(t *testing.T) {
	got := LineDiff("a\nb\nc\nd\n", "a\nc\nx\nd")
	want := "- b,+ x"
	if strings.Join(got, ",") != want {
		t.Errorf("LineDiff = %q, want %q", got, want)
	}
	if d := LineDiff("same\n", "same"); len(d) != 0 {
		t.Errorf("a trailing newline alone is reported: %q", d)
	}
}
