package manifest

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mesh.dev/mesh/internal/treediff"
)

// FieldChange is one field that differs between two values.
type FieldChange = treediff.Change

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

// Values lists the fields that differ between two generic values, in
// treediff's path notation.
func Values(a, b any) []FieldChange { return treediff.Compare(a, b) }
