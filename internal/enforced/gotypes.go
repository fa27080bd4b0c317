package enforced

import (
	"reflect"
	"sort"
	"strconv"
	"strings"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
)

// Types are the spec types of mesh's own kinds (Go structs, not
// istio.io/api messages), by kind; their fields are named by their JSON
// names, as a user writes them.
var Types = map[string]reflect.Type{
	meshnet.Kind: reflect.TypeOf(meshnet.MetaRouteSpec{}),
}

// Struct lists the set fields of spec (a pointer to, or a value of, one of
// Types) that the mesh does not carry out or no entry covers, as
// Unenforced does for the Istio kinds.
func Struct(kind string, spec any) []Finding {
	var out []Finding
	v := reflect.ValueOf(spec)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	walkStruct(kind, v, "spec", "spec", &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// jsonName is a struct field's JSON name; "" for a field JSON leaves out
// or inlines (see inlined).
func jsonName(f reflect.StructField) string {
	if !f.IsExported() || inlined(f) {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return f.Name
	}
	return name
}

// inlined reports whether JSON puts a field's own fields in its parent:
// an embedded struct without a name of its own, or one tagged ",inline"
// as the Kubernetes API types tag theirs (HTTPRoute's CommonRouteSpec,
// BackendRef's BackendObjectReference). Their fields are the parent's.
func inlined(f reflect.StructField) bool {
	if !f.Anonymous {
		return false
	}
	name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name == "" || strings.Contains(","+opts+",", ",inline,")
}

// structOf is the struct type a field's values hold (through a pointer,
// a slice's elements or a map's values), or nil for a leaf.
func structOf(t reflect.Type) reflect.Type {
	for {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			t = t.Elem()
		case reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			return t
		default:
			return nil
		}
	}
}

// walkStruct appends the findings under the struct v, at path (no
// indices) and at (with indices).
func walkStruct(kind string, v reflect.Value, path, at string, out *[]Finding) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if inlined(f) && f.Type.Kind() == reflect.Struct {
			walkStruct(kind, v.Field(i), path, at, out)
			continue
		}
		name := jsonName(f)
		if name == "" {
			continue
		}
		fv := v.Field(i)
		if fv.IsZero() {
			continue
		}
		p, a := path+"."+name, at+"."+name
		e, known := Lookup(kind, p)
		_, exact := table[kind][p]
		if known && !e.Enforced && (exact || !hasKnownChild(kind, p)) {
			*out = append(*out, Finding{Path: a, Note: e.Note})
			continue
		}
		if structOf(f.Type) == nil {
			if !known {
				*out = append(*out, Finding{Path: a, Note: unknownNote})
			}
			continue
		}
		before := len(*out)
		walkValue(kind, fv, p, a, out)
		if len(*out) == before && !known && !hasKnownChild(kind, p) {
			*out = append(*out, Finding{Path: a, Note: unknownNote})
		}
	}
}

// walkValue walks a set value holding structs: a struct, a pointer to
// one, or a list or map of them (which add an index, no path segment).
func walkValue(kind string, v reflect.Value, path, at string, out *[]Finding) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkValue(kind, v.Elem(), path, at, out)
		}
	case reflect.Struct:
		walkStruct(kind, v, path, at, out)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkValue(kind, v.Index(i), path, at+"["+strconv.Itoa(i)+"]", out)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			walkValue(kind, v.MapIndex(k), path, at+"["+k.String()+"]", out)
		}
	}
}

// structLeaves lists every field path of the struct type t a user can
// set a value at (lists and maps add no segment).
func structLeaves(t reflect.Type, path string, seen map[reflect.Type]bool, out *[]string) {
	if seen[t] {
		*out = append(*out, path)
		return
	}
	seen[t] = true
	defer delete(seen, t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if inlined(f) && f.Type.Kind() == reflect.Struct {
			structLeaves(f.Type, path, seen, out)
			continue
		}
		name := jsonName(f)
		if name == "" {
			continue
		}
		p := path + "." + name
		st := structOf(f.Type)
		if st == nil || st.NumField() == 0 {
			*out = append(*out, p)
			continue
		}
		structLeaves(st, p, seen, out)
	}
}
