package proxyconfig

import (
	"encoding/json"
	"fmt"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"

	"mesh.dev/mesh/internal/configdump"
	"mesh.dev/mesh/internal/treediff"
)

// Change classes in a Diff.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// FieldChange is one differing field of a changed resource.
type FieldChange = treediff.Change

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
			if fields := treediff.Compare(ea.value, eb.value); len(fields) > 0 {
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
