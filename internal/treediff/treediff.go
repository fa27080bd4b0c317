// Package treediff compares two generic trees, as decoded from JSON or YAML
// (maps, lists and scalars), and lists the leaf-most fields where they differ.
//
// Both `mesh manifest diff` and `mesh proxy-config diff` speak in these paths,
// so a user reads one notation everywhere: dotted keys, `[i]` for list
// positions, `[name:x]` for list elements matched by their name (the same
// selector `--set` accepts), and `["a.b"]` for keys that hold a dot or bracket.
package treediff

import (
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Change is one field that differs between two trees.
type Change struct {
	Path string `json:"path"`
	// Old is nil when the field was added, New when it was removed.
	Old any `json:"old,omitempty"`
	New any `json:"new,omitempty"`
}

// Root is the path of a change to the whole value.
const Root = "."

// Compare lists the fields that differ from a to b, sorted by key within
// each map. Lists whose elements all are maps with distinct "name" values
// are matched by name, so reordering them is not a change; other lists are
// compared by position.
func Compare(a, b any) []Change {
	var out []Change
	walk("", a, b, &out)
	return out
}

func walk(path string, a, b any, out *[]Change) {
	if am, ok := a.(map[string]any); ok {
		if bm, ok := b.(map[string]any); ok {
			walkMap(path, am, bm, out)
			return
		}
	}
	if al, ok := a.([]any); ok {
		if bl, ok := b.([]any); ok {
			if named(al) && named(bl) {
				walkNamed(path, al, bl, out)
			} else {
				walkList(path, al, bl, out)
			}
			return
		}
	}
	if !equalLeaf(a, b) {
		*out = append(*out, Change{Path: orRoot(path), Old: a, New: b})
	}
}

func walkMap(path string, a, b map[string]any, out *[]Change) {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		av, inA := a[k]
		bv, inB := b[k]
		p := Join(path, k)
		switch {
		case !inA:
			*out = append(*out, Change{Path: p, New: bv})
		case !inB:
			*out = append(*out, Change{Path: p, Old: av})
		default:
			walk(p, av, bv, out)
		}
	}
}

func walkList(path string, a, b []any, out *[]Change) {
	for i := 0; i < max(len(a), len(b)); i++ {
		p := path + "[" + strconv.Itoa(i) + "]"
		switch {
		case i >= len(a):
			*out = append(*out, Change{Path: p, New: b[i]})
		case i >= len(b):
			*out = append(*out, Change{Path: p, Old: a[i]})
		default:
			walk(p, a[i], b[i], out)
		}
	}
}

// walkNamed visits names in a's order, then the names only b holds.
func walkNamed(path string, a, b []any, out *[]Change) {
	inB := make(map[string]any, len(b))
	for _, e := range b {
		inB[nameOf(e)] = e
	}
	inA := make(map[string]bool, len(a))
	for _, e := range a {
		n := nameOf(e)
		inA[n] = true
		p := path + "[name:" + n + "]"
		if other, ok := inB[n]; ok {
			walk(p, e, other, out)
		} else {
			*out = append(*out, Change{Path: p, Old: e})
		}
	}
	for _, e := range b {
		if n := nameOf(e); !inA[n] {
			*out = append(*out, Change{Path: path + "[name:" + n + "]", New: e})
		}
	}
}

func nameOf(e any) string { return e.(map[string]any)["name"].(string) }

// named reports whether every element is a map with a distinct string "name".
func named(l []any) bool {
	if len(l) == 0 {
		return false
	}
	seen := make(map[string]bool, len(l))
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

// equalLeaf treats 1 and 1.0 as equal: YAML and JSON decoders disagree on
// which one a number is.
func equalLeaf(a, b any) bool {
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

// Join appends key to path, quoting keys a dotted path could not hold
// unambiguously (annotation names such as "sidecar.istio.io/inject").
func Join(path, key string) string {
	if key == "" || strings.ContainsAny(key, ".[]\"") {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(p string) string {
	if p == "" {
		return Root
	}
	return p
}
