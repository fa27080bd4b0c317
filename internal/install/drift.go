package install

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// FieldDrift is one field whose live value differs from the rendered one.
type FieldDrift struct {
	Path string `json:"path"`
	Want any    `json:"want"`
	Got  any    `json:"got,omitempty"`
}

// Drift compares the fields the rendering sets with the live object and
// returns those that differ. Fields only the live object has (defaults the
// server filled in, status, bookkeeping) are not compared; lists of named
// items are matched by name, so a defaulted field inside one does not count.
func Drift(want, got map[string]any) []FieldDrift {
	var out []FieldDrift
	diffValue("", stripBookkeeping(want), got, &out)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// stripBookkeeping drops the parts of a rendered object the server owns.
func stripBookkeeping(obj map[string]any) map[string]any {
	c := make(map[string]any, len(obj))
	for k, v := range obj {
		if k == "status" {
			continue
		}
		c[k] = v
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		keep := map[string]any{}
		for _, k := range []string{"labels", "annotations"} {
			if v, ok := md[k]; ok {
				keep[k] = v
			}
		}
		c["metadata"] = keep
	}
	return c
}

func diffValue(path string, want, got any, out *[]FieldDrift) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			if len(w) == 0 && got == nil {
				return
			}
			*out = append(*out, FieldDrift{Path: orRoot(path), Want: want, Got: got})
			return
		}
		for k, wv := range w {
			gv, present := g[k]
			if !present {
				if isEmpty(wv) {
					continue
				}
				*out = append(*out, FieldDrift{Path: join(path, k), Want: wv})
				continue
			}
			diffValue(join(path, k), wv, gv, out)
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			if len(w) == 0 && got == nil {
				return
			}
			*out = append(*out, FieldDrift{Path: orRoot(path), Want: want, Got: got})
			return
		}
		if named(w) && named(g) {
			byName := map[string]any{}
			for _, gv := range g {
				byName[itemName(gv)] = gv
			}
			for _, wv := range w {
				n := itemName(wv)
				p := fmt.Sprintf("%s[name=%s]", path, n)
				gv, ok := byName[n]
				if !ok {
					*out = append(*out, FieldDrift{Path: p, Want: wv})
					continue
				}
				diffValue(p, wv, gv, out)
			}
			return
		}
		if len(w) != len(g) {
			*out = append(*out, FieldDrift{Path: orRoot(path), Want: want, Got: got})
			return
		}
		for n := range w {
			diffValue(fmt.Sprintf("%s[%d]", path, n), w[n], g[n], out)
		}
	default:
		if !sameScalar(want, got) {
			*out = append(*out, FieldDrift{Path: orRoot(path), Want: want, Got: got})
		}
	}
}

// sameScalar compares leaf values the way the server normalises them:
// numbers by value, quantities ("500m" and "0.5") by amount.
func sameScalar(want, got any) bool {
	if reflect.DeepEqual(want, got) {
		return true
	}
	wf, wok := number(want)
	gf, gok := number(got)
	if wok && gok {
		return wf == gf
	}
	ws, wok := want.(string)
	gs, gok := got.(string)
	if wok && gok {
		wq, err1 := resource.ParseQuantity(ws)
		gq, err2 := resource.ParseQuantity(gs)
		return err1 == nil && err2 == nil && wq.Cmp(gq) == 0
	}
	// An int-or-string field may come back as the other form ("8080" vs 8080).
	if gf, ok := number(got); ok && wok {
		f, err := strconv.ParseFloat(ws, 64)
		return err == nil && f == gf
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	}
	return 0, false
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}

func named(items []any) bool {
	if len(items) == 0 {
		return false
	}
	for _, it := range items {
		if itemName(it) == "" {
			return false
		}
	}
	return true
}

func itemName(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	s, _ := m["name"].(string)
	return s
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	if strings.ContainsAny(key, ".[]") {
		return fmt.Sprintf("%s[%q]", path, key)
	}
	return path + "." + key
}

func orRoot(p string) string {
	if p == "" {
		return "."
	}
	return p
}
