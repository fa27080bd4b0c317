package manifest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// roundTrip encodes v with EncodeYAML and reads it back with the YAML
// reader Kubernetes tooling uses.
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeYAML(&b, v); err != nil {
		t.Fatalf("EncodeYAML(%#v): %v", v, err)
	}
	var back any
	if err := yaml.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, b.String())
	}
	return back
}

// viaJSON normalises numbers the way the YAML reader returns them.
func viaJSON(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

func TestEncodeYAMLRoundTrip(t *testing.T) {
	v := map[string]any{
		"plain":       "mesh-pilot",
		"empty":       "",
		"bools":       []any{"true", "no", "Off", "y", "NULL", "~", true, false, nil},
		"numbers":     []any{"15012", "1.20", "0x1F", "1e3", ".5", "-1", "+1", "inf", ".nan", int64(7), 2.5, float64(3)},
		"special":     []any{"a: b", "a #b", "#c", "- x", "[x]", "{x}", "*ref", "&a", "!tag", "%x", "@x", "`x`", "'q'", "\"q\"", "a:b", " lead", "trail ", "tab\there", "x,y", "?", "|", ">"},
		"multi":       "line one\nline two\n",
		"multiNoNL":   "a\nb",
		"multiTrail":  "a\n\n",
		"multiIndent": "  indented\nx",
		"unicode":     "héllo ✓",
		"control":     "bell\a",
		"nested":      map[string]any{"list": []any{map[string]any{"name": "x", "ports": []any{int64(1), int64(2)}}, []any{"a", []any{}}, map[string]any{}}, "m": map[string]any{}},
		"key: odd":    "v",
		"15014":       "numeric key",
	}
	got := roundTrip(t, v)
	if want := viaJSON(t, v); !reflect.DeepEqual(got, want) {
		gb, _ := json.MarshalIndent(got, "", " ")
		wb, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("round trip changed the value:\ngot  %s\nwant %s", gb, wb)
	}
}

func TestEncodeYAMLReadable(t *testing.T) {
	var b bytes.Buffer
	EncodeYAML(&b, map[string]any{"data": map[string]any{"mesh": "a: 1\nb: 2"}, "items": []any{map[string]any{"name": "x", "v": int64(1)}}})
	want := "data:\n  mesh: |-\n    a: 1\n    b: 2\nitems:\n- name: x\n  v: 1\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// FuzzEncodeYAML checks that any string, as a key or a value, survives
// printing and reading back.
func FuzzEncodeYAML(f *testing.F) {
	for _, s := range []string{"", "a", "true", "1", "a: b", "x\ny", " x", "- a", "#", "é", "a\n\nb\n", "\t", "0o17", "1_000", "null", ":", "a:", "=", "<<"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(`"`+s+`"`)) && !utf8Valid(s) {
			return
		}
		if !utf8Valid(s) {
			return
		}
		v := map[string]any{"k": s, s: "v", "l": []any{s}}
		got := roundTrip(t, v)
		if want := viaJSON(t, v); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q did not survive: got %#v", s, got)
		}
	})
}

func utf8Valid(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' {
			return false
		}
	}
	return true
}
