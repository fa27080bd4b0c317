package spec

import (
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
