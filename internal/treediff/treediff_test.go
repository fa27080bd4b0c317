package treediff

import (
	"encoding/json"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func paths(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Path
	}
	return out
}

func TestCompare(t *testing.T) {
	cases := []struct {
		name, a, b string
		want       []string
	}{
		{"equal trees", "a: {b: 1}", "a: {b: 1}", nil},
		{"changed leaf", "a: {b: 1}", "a: {b: 2}", []string{"a.b"}},
		{"added and removed keys", "a: 1\nb: 2", "b: 2\nc: 3", []string{"a", "c"}},
		{"named lists ignore order", "l: [{name: a, v: 1}, {name: b, v: 2}]", "l: [{name: b, v: 2}, {name: a, v: 1}]", nil},
		{"named list element changed, added, removed",
			"l: [{name: x, v: 1}, {name: gone}]", "l: [{name: x, v: 2}, {name: new}]",
			[]string{"l[name:x].v", "l[name:gone]", "l[name:new]"}},
		{"plain lists by position", "l: [1, 2]", "l: [1, 3, 4]", []string{"l[1]", "l[2]"}},
		{"duplicate names fall back to position", "l: [{name: x, v: 1}, {name: x, v: 2}]", "l: [{name: x, v: 1}, {name: x, v: 3}]", []string{"l[1].v"}},
		{"dotted keys are quoted", "annotations: {sidecar.istio.io/inject: 'true'}", "annotations: {sidecar.istio.io/inject: 'false'}", []string{`annotations["sidecar.istio.io/inject"]`}},
		{"type change is a leaf change", "a: {b: 1}", "a: [1]", []string{"a"}},
		{"whole value", "1", "2", []string{Root}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := paths(Compare(decode(t, c.a), decode(t, c.b)))
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("paths = %q, want %q", got, c.want)
			}
		})
	}
}

func TestCompareKeepsOldAndNew(t *testing.T) {
	got := Compare(decode(t, "a: 1\nb: x"), decode(t, "a: 2\nc: z"))
	want := []Change{{Path: "a", Old: float64(1), New: float64(2)}, {Path: "b", Old: "x"}, {Path: "c", New: "z"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Compare = %#v, want %#v", got, want)
	}
}

// An int from a YAML decoder and a float64 from encoding/json are one number.
func TestCompareNumbersAcrossDecoders(t *testing.T) {
	var fromJSON any
	if err := json.Unmarshal([]byte(`{"port": 8080}`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	fromGo := map[string]any{"port": int64(8080)}
	if cs := Compare(fromJSON, fromGo); len(cs) != 0 {
		t.Errorf("8080 and 8080.0 differ: %v", cs)
	}
}

func FuzzCompare(f *testing.F) {
	f.Add(`{"a":[{"name":"x"}]}`, `{"a":[{"name":"y"}]}`)
	f.Add(`[1,2,{"b":null}]`, `{"":1}`)
	f.Fuzz(func(t *testing.T, a, b string) {
		var va, vb any
		if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
			return
		}
		if cs := Compare(va, va); len(cs) != 0 {
			t.Fatalf("a tree differs from itself: %v", cs)
		}
		if ab, ba := Compare(va, vb), Compare(vb, va); len(ab) != len(ba) {
			t.Fatalf("a→b has %d changes, b→a %d: %v / %v", len(ab), len(ba), ab, ba)
		}
	})
}
