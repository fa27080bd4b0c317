package manifest

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FieldChange is one field that differs between two values.
type FieldChange struct {
	Path string `json:"path"`
	// Old is absent (nil) when the field was added, New when it was removed.
	Old any `json:"old,omitempty"`
	New any `json:"new,omitempty"`
}

// ObjectChange is one object present in both manifests with different content.
type ObjectChange struct {
	Key    string        `json:"object"`
	Fields []FieldChange `json:"fields"`
}

// Diff is the difference between two manifests, object by object.
type Diff struct {
	Added   []string       `json:"added,omitempty"`
	Removed []string       `json:"removed,omitempty"`
	Changed []ObjectChange `json:"changed,omitempty"`
}

// Empty reports whether the manifests hold the same objects with the same content.
func (d *Diff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// Compare matches objects by Key, ignoring their order in either manifest.
func Compare(a, b []*unstructured.Unstructured) (*Diff, error) {
	index := func(objs []*unstructured.Unstructured, which string) (map[string]*unstructured.Unstructured, error) {
		m := make(map[string]*unstructured.Unstructured, len(objs))
		for _, o := range objs {
			k := Key(o)
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("%s manifest holds %s twice", which, k)
			}
			m[k] = o
		}
		return m, nil
	}
	am, err := index(a, "first")
	if err != nil {
		return nil, err
	}
	bm, err := index(b, "second")
	if err != nil {
		return nil, err
	}
	d := &Diff{}
	for k, ao := range am {
		bo, ok := bm[k]
		if !ok {
			d.Removed = append(d.Removed, k)
			continue
		}
		if fields := Values(ao.Object, bo.Object); len(fields) > 0 {
			d.Changed = append(d.Changed, ObjectChange{Key: k, Fields: fields})
		}
	}
	for k := range bm {
		if _, ok := am[k]; !ok {
			d.Added = append(d.Added, k)
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	sort.Slice(d.Changed, func(i, j int) bool { return d.Changed[i].Key < d.Changed[j].Key })
	return d, nil
}

// Values lists the fields that differ between two generic values, with
// dotted paths; lists of named maps are matched by name ([name:x]), other
// lists by position.
func Values(a, b any) []FieldChange {
	var out []FieldChange
	diffAt("", a, b, &out)
	return out
}

func diffAt(path string, a, b any, out *[]FieldChange) {
	am, aIsMap := a.(map[string]any)
	bm, bIsMap := b.(map[string]any)
	if aIsMap && bIsMap {
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			av, aok := am[k]
			bv, bok := bm[k]
			p := join(path, k)
			switch {
			case !aok:
				*out = append(*out, FieldChange{Path: p, New: bv})
			case !bok:
				*out = append(*out, FieldChange{Path: p, Old: av})
			default:
				diffAt(p, av, bv, out)
			}
		}
		return
	}
	al, aIsList := a.([]any)
	bl, bIsList := b.([]any)
	if aIsList && bIsList {
		if named(al) && named(bl) {
			diffNamed(path, al, bl, out)
			return
		}
		for i := 0; i < max(len(al), len(bl)); i++ {
			p := path + "[" + strconv.Itoa(i) + "]"
			switch {
			case i >= len(al):
				*out = append(*out, FieldChange{Path: p, New: bl[i]})
			case i >= len(bl):
				*out = append(*out, FieldChange{Path: p, Old: al[i]})
			default:
				diffAt(p, al[i], bl[i], out)
			}
		}
		return
	}
	if !equalScalar(a, b) {
		*out = append(*out, FieldChange{Path: path, Old: a, New: b})
	}
}

func diffNamed(path string, a, b []any, out *[]FieldChange) {
	bi := map[string]any{}
	for _, e := range b {
		bi[e.(map[string]any)["name"].(string)] = e
	}
	seen := map[string]bool{}
	for _, e := range a {
		name := e.(map[string]any)["name"].(string)
		seen[name] = true
		p := path + "[name:" + name + "]"
		if other, ok := bi[name]; ok {
			diffAt(p, e, other, out)
		} else {
			*out = append(*out, FieldChange{Path: p, Old: e})
		}
	}
	for _, e := range b {
		name := e.(map[string]any)["name"].(string)
		if !seen[name] {
			*out = append(*out, FieldChange{Path: path + "[name:" + name + "]", New: e})
		}
	}
}

func named(l []any) bool {
	if len(l) == 0 {
		return false
	}
	seen := map[string]bool{}
	for _, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		n, ok := m["name"].(string)
		if !ok || seen[n] {
			return false
		}
		seen[n] = true
	}
	return true
}

// equalScalar compares leaves, treating 1 and 1.0 as equal since YAML
// decoders disagree on which one a number is.
func equalScalar(a, b any) bool {
	if fa, ok := number(a); ok {
		if fb, ok := number(b); ok {
			return fa == fb
		}
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch t := v.(type) {
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case float64:
		return t, true
	}
	return 0, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
