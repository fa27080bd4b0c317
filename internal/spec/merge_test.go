package spec

import (
	"errors"
	"reflect"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

func TestMergeNamedLists(t *testing.T) {
	base := map[string]any{"gws": []any{
		map[string]any{"name": "a", "enabled": true, "k8s": map[string]any{"replicaCount": 1}},
		map[string]any{"name": "b", "enabled": false},
	}, "hosts": []any{"x", "y"}}
	overlay := map[string]any{"gws": []any{
		map[string]any{"name": "b", "enabled": true},
		map[string]any{"name": "c"},
	}, "hosts": []any{"z"}}
	got := Merge(base, overlay)
	want := map[string]any{"gws": []any{
		map[string]any{"name": "a", "enabled": true, "k8s": map[string]any{"replicaCount": 1}},
		map[string]any{"name": "b", "enabled": true},
		map[string]any{"name": "c"},
	}, "hosts": []any{"z"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge = %v\nwant %v", got, want)
	}
	if base["gws"].([]any)[1].(map[string]any)["enabled"] != false {
		t.Fatal("Merge changed its base")
	}
}

// FuzzMerge checks the laws overlays rely on, on arbitrary YAML documents:
// merging never changes its inputs, an empty overlay changes nothing, a
// document laid over itself is itself, and every overlay scalar wins.
func FuzzMerge(f *testing.F) {
	f.Add("a: 1\nb: {c: 2}", "b: {d: 3}")
	f.Add("l: [{name: x, v: 1}, {name: y}]", "l: [{name: x, v: 2}, {name: z}]")
	f.Add("l: [1, 2]", "l: {a: 1}")
	f.Add("a: null", "a: {b: [1]}")
	f.Add("", "x: y")
	f.Fuzz(func(t *testing.T, a, b string) {
		var base, over any
		if yaml.Unmarshal([]byte(a), &base) != nil || yaml.Unmarshal([]byte(b), &over) != nil {
			return
		}
		base, over = normalize(base), normalize(over)
		baseCopy, overCopy := deepCopy(base), deepCopy(over)
		got := Merge(base, over)
		if !reflect.DeepEqual(base, baseCopy) || !reflect.DeepEqual(over, overCopy) {
			t.Fatal("Merge changed an input")
		}
		if m, ok := base.(map[string]any); ok {
			if !reflect.DeepEqual(Merge(m, map[string]any{}), m) {
				t.Fatalf("empty overlay changed %v", m)
			}
		}
		if self := Merge(base, base); !reflect.DeepEqual(self, base) {
			t.Fatalf("Merge(x, x) = %v, want %v", self, base)
		}
		if om, ok := over.(map[string]any); ok {
			gm, _ := got.(map[string]any)
			for k, v := range om {
				switch v.(type) {
				case map[string]any, []any:
				default:
					if !reflect.DeepEqual(gm[k], v) {
						t.Fatalf("overlay %s=%v lost: got %v", k, v, gm[k])
					}
				}
			}
		}
	})
}

// FuzzOverlayFile feeds arbitrary -f file content through reading,
// translation and merging: it must fail with a FileError or produce a spec,
// never panic, and a file that loads must load the same way twice.
func FuzzOverlayFile(f *testing.F) {
	f.Add([]byte("kind: MeshOperator\nspec:\n  hub: x\n"))
	f.Add([]byte("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  profile: demo\n  components:\n    ingressGateways:\n    - name: istio-ingressgateway\n      enabled: false\n"))
	f.Add([]byte("kind: MeshOperator\nspec:\n  components:\n    egressGateways:\n    - name: a\n      enabled: true\n      k8s: {replicaCount: 2}\n"))
	f.Add([]byte("kind: MeshOperator\nspec: &a\n  values: *a\n"))
	f.Add([]byte("- 1\n- 2\n"))
	f.Add([]byte("kind: IstioOperator\nspec:\n  values:\n    pilot:\n      env: [1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, _, err := parseOverlay("fuzz.yaml", data)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a FileError: %v", err, err)
			}
			return
		}
		base, err := ProfileTree(DefaultProfile)
		if err != nil {
			t.Fatal(err)
		}
		merged := Merge(base, doc).(map[string]any)
		op1, err1 := decode(merged)
		op2, err2 := decode(Merge(base, doc).(map[string]any))
		if (err1 == nil) != (err2 == nil) || (err1 == nil && !reflect.DeepEqual(op1, op2)) {
			t.Fatal("the same overlay decoded two different ways")
		}
	})
}
