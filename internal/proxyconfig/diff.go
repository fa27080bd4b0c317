package proxyconfig

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"mesh.dev/mesh/internal/configdump"
)

// Change classes in a Diff.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// FieldChange is one differing field of a changed resource. Old or New is
// nil when the field exists on one side only.
type FieldChange struct {
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// ResourceDiff is one resource that differs between two dumps.
type ResourceDiff struct {
	Kind   configdump.Kind `json:"kind"`
	Name   string          `json:"name"`
	Change string          `json:"change"`
	Fields []FieldChange   `json:"fields,omitempty"`
}

// Diff is the difference between two dumps, sorted by kind then name.
type Diff struct {
	Resources []ResourceDiff `json:"resources"`
}

// Empty reports whether the dumps are the same, ignoring volatile fields.
func (d Diff) Empty() bool { return len(d.Resources) == 0 }

// volatile are fields that differ between any two dumps of the same config:
// when it was received, which push it came from, and the stream's nonce.
var volatile = map[string]bool{
	"last_updated": true, "lastUpdated": true,
	"version_info": true, "versionInfo": true,
	"nonce": true, "response_nonce": true, "responseNonce": true,
}

// canonical turns resources into comparable JSON values keyed by kind/name.
// Typed resources are re-encoded with proto field names so a snake_case and
// a camelCase dump of the same config compare equal; resources holding
// extensions this program does not know are compared as written, since
// their typed form lacks those extensions' contents.
func canonical(d *configdump.Dump) (map[string]*entry, error) {
	out := map[string]*entry{}
	for _, r := range d.Resources {
		raw := r.Raw
		if r.Message != nil && len(r.UnknownTypes) == 0 {
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r.Message)
			if err != nil {
				return nil, fmt.Errorf("encode %s %q: %w", r.Kind, r.Name, err)
			}
			raw = b
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("read %s %q: %w", r.Kind, r.Name, err)
		}
		key := string(r.Kind) + "/" + r.Name
		if _, dup := out[key]; dup {
			key += "@" + string(r.State)
		}
		out[key] = &entry{kind: r.Kind, name: r.Name, value: stripVolatile(v)}
	}
	return out, nil
}

type entry struct {
	kind  configdump.Kind
	name  string
	value any
}

func stripVolatile(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if volatile[k] {
				delete(t, k)
				continue
			}
			t[k] = stripVolatile(e)
		}
	case []any:
		for i, e := range t {
			t[i] = stripVolatile(e)
		}
	}
	return v
}

// Compare reports per resource what was added, removed or changed from a to b.
func Compare(a, b *configdump.Dump) (Diff, error) {
	ca, err := canonical(a)
	if err != nil {
		return Diff{}, err
	}
	cb, err := canonical(b)
	if err != nil {
		return Diff{}, err
	}
	var d Diff
	for _, k := range sortedKeys(ca, cb) {
		ea, eb := ca[k], cb[k]
		switch {
		case eb == nil:
			d.Resources = append(d.Resources, ResourceDiff{Kind: ea.kind, Name: ea.name, Change: Removed})
		case ea == nil:
			d.Resources = append(d.Resources, ResourceDiff{Kind: eb.kind, Name: eb.name, Change: Added})
		default:
			var fields []FieldChange
			walkDiff("", ea.value, eb.value, &fields)
			if len(fields) > 0 {
				d.Resources = append(d.Resources, ResourceDiff{Kind: ea.kind, Name: ea.name, Change: Changed, Fields: fields})
			}
		}
	}
	return d, nil
}

// sortedKeys orders resources by kind in dump order, then by name.
func sortedKeys(maps ...map[string]*entry) []string {
	rank := map[configdump.Kind]int{}
	for i, k := range configdump.AllKinds {
		rank[k] = i
	}
	seen := map[string]*entry{}
	for _, m := range maps {
		for k, e := range m {
			seen[k] = e
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := rank[seen[keys[i]].kind], rank[seen[keys[j]].kind]
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// walkDiff records the leaf-most fields where a and b differ.
func walkDiff(path string, a, b any, out *[]FieldChange) {
	switch ta := a.(type) {
	case map[string]any:
		tb, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range ta {
			keys[k] = true
		}
		for k := range tb {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			va, ina := ta[k]
			vb, inb := tb[k]
			p := joinPath(path, k)
			switch {
			case !ina:
				*out = append(*out, FieldChange{Path: p, New: vb})
			case !inb:
				*out = append(*out, FieldChange{Path: p, Old: va})
			default:
				walkDiff(p, va, vb, out)
			}
		}
		return
	case []any:
		tb, ok := b.([]any)
		if !ok {
			break
		}
		if byName(ta) && byName(tb) {
			walkNamedList(path, ta, tb, out)
			return
		}
		for i := 0; i < max(len(ta), len(tb)); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(tb):
				*out = append(*out, FieldChange{Path: p, Old: ta[i]})
			case i >= len(ta):
				*out = append(*out, FieldChange{Path: p, New: tb[i]})
			default:
				walkDiff(p, ta[i], tb[i], out)
			}
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, FieldChange{Path: orDot(path), Old: a, New: b})
	}
}

// byName reports whether every element is an object with a distinct "name",
// so elements are matched by name and a reordering is not a change.
func byName(l []any) bool {
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

func walkNamedList(path string, a, b []any, out *[]FieldChange) {
	index := func(l []any) map[string]any {
		m := map[string]any{}
		for _, e := range l {
			m[e.(map[string]any)["name"].(string)] = e
		}
		return m
	}
	ia, ib := index(a), index(b)
	var names []string
	for _, e := range a {
		names = append(names, e.(map[string]any)["name"].(string))
	}
	for _, e := range b {
		if n := e.(map[string]any)["name"].(string); ia[n] == nil {
			names = append(names, n)
		}
	}
	for _, n := range names {
		p := fmt.Sprintf("%s[name=%s]", path, n)
		switch {
		case ib[n] == nil:
			*out = append(*out, FieldChange{Path: p, Old: ia[n]})
		case ia[n] == nil:
			*out = append(*out, FieldChange{Path: p, New: ib[n]})
		default:
			walkDiff(p, ia[n], ib[n], out)
		}
	}
}

func joinPath(path, key string) string {
	if strings.ContainsAny(key, ".[]") || key == "" {
		key = fmt.Sprintf("[%q]", key)
		return path + key
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func orDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}
