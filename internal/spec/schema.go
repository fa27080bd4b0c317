package spec

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// nodeKind is the shape of one place in the spec.
type nodeKind int

const (
	structNode nodeKind = iota // known keys only
	mapNode                    // any key, each holding elem
	listNode                   // elements of elem
	leafNode                   // a scalar of leaf kind
	freeNode                   // anything goes (meshConfig, empty maps in chart values)
)

// node describes what may appear at one place in a spec tree; it is built
// from the Go types by reflection so --set and -f validation cannot drift
// from the API.
type node struct {
	kind   nodeKind
	fields map[string]*node
	elem   *node
	leaf   reflect.Kind
}

var (
	schemaOnce sync.Once
	specSchema *node
)

// schema returns the node tree of MeshOperatorSpec, with values checked
// against the charts' own values.
func schema() *node {
	schemaOnce.Do(func() {
		specSchema = nodeForType(reflect.TypeOf(MeshOperatorSpec{}))
		specSchema.fields["meshConfig"] = &node{kind: freeNode}
		specSchema.fields["values"] = nodeForValue(chartValues())
	})
	return specSchema
}

func nodeForType(t reflect.Type) *node {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		n := &node{kind: structNode, fields: map[string]*node{}}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			n.fields[name] = nodeForType(f.Type)
		}
		return n
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return &node{kind: freeNode}
		}
		return &node{kind: mapNode, elem: nodeForType(t.Elem())}
	case reflect.Slice:
		return &node{kind: listNode, elem: nodeForType(t.Elem())}
	case reflect.Interface:
		return &node{kind: freeNode}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return &node{kind: leafNode, leaf: reflect.Int}
	case reflect.Float32, reflect.Float64:
		return &node{kind: leafNode, leaf: reflect.Float64}
	default:
		return &node{kind: leafNode, leaf: t.Kind()}
	}
}

// nodeForValue builds a node from a chart's default values: known keys are
// those the chart defines; an empty map or null is open to any content.
func nodeForValue(v any) *node {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			return &node{kind: freeNode}
		}
		n := &node{kind: structNode, fields: map[string]*node{}}
		for k, x := range t {
			n.fields[k] = nodeForValue(x)
		}
		return n
	case []any:
		return &node{kind: listNode, elem: &node{kind: freeNode}}
	case string:
		return &node{kind: leafNode, leaf: reflect.String}
	case bool:
		return &node{kind: leafNode, leaf: reflect.Bool}
	case int, int64, uint64:
		return &node{kind: leafNode, leaf: reflect.Int}
	case float64:
		return &node{kind: leafNode, leaf: reflect.Float64}
	default:
		return &node{kind: freeNode}
	}
}

func (n *node) keys() []string {
	ks := make([]string, 0, len(n.fields))
	for k := range n.fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// PathError reports a path that does not exist in the install API.
type PathError struct {
	Path       string // the path as given
	At         string // the part of it that is valid
	Reason     string
	Suggestion string // the nearest valid path, if any
}

func (e *PathError) Error() string {
	msg := fmt.Sprintf("unknown path %q: %s", e.Path, e.Reason)
	if e.Suggestion != "" {
		msg += fmt.Sprintf("; did you mean %q?", e.Suggestion)
	}
	return msg
}

// lookup walks p through the schema and returns the node it addresses.
func lookup(p Path) (*node, error) {
	n := schema()
	for i, s := range p {
		here := Path(p[:i]).String()
		if n.kind == freeNode {
			return n, nil
		}
		switch s.Kind {
		case FieldStep:
			switch n.kind {
			case structNode:
				next, ok := n.fields[s.Key]
				if !ok {
					return nil, unknownField(p, i, n)
				}
				n = next
			case mapNode:
				n = n.elem
			default:
				return nil, &PathError{Path: p.String(), At: here, Reason: fmt.Sprintf("%s is %s, it has no field %q", orRoot(here), n.describe(), s.Key)}
			}
		case IndexStep, SelectStep:
			if n.kind != listNode {
				return nil, &PathError{Path: p.String(), At: here, Reason: fmt.Sprintf("%s is %s, not a list: drop the [%s]", orRoot(here), n.describe(), selText(s))}
			}
			if s.Kind == SelectStep && n.elem.kind == structNode {
				if _, ok := n.elem.fields[s.Key]; !ok {
					e := unknownField(append(Path{}, append(p[:i:i], Step{Kind: FieldStep, Key: s.Key})...), i, n.elem)
					e.Path = p.String()
					e.Reason = fmt.Sprintf("elements of %s have no field %q to select on", here, s.Key)
					return nil, e
				}
			}
			n = n.elem
		}
	}
	return n, nil
}

func selText(s Step) string {
	if s.Kind == IndexStep {
		return fmt.Sprint(s.Index)
	}
	return s.Key + ":" + s.Value
}

func orRoot(s string) string {
	if s == "" {
		return "the spec"
	}
	return s
}

func (n *node) describe() string {
	switch n.kind {
	case listNode:
		return "a list"
	case leafNode:
		return "a " + n.leaf.String()
	default:
		return "a map"
	}
}

// unknownField builds the error for p[i] missing from n, suggesting the closest key.
func unknownField(p Path, i int, n *node) *PathError {
	here := Path(p[:i]).String()
	bad := p[i].Key
	best, bestD := "", 1<<30
	for _, k := range n.keys() {
		if d := editDistance(strings.ToLower(bad), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	e := &PathError{Path: p.String(), At: here}
	if why, ok := replacedFields[Path(p[:i+1]).String()]; ok {
		e.Reason = why
		return e
	}
	where := orRoot(here)
	e.Reason = fmt.Sprintf("%s has no field %q (valid: %s)", where, bad, strings.Join(n.keys(), ", "))
	if best != "" && bestD <= max(2, len(bad)/2) {
		sug := append(Path{}, p[:i]...)
		sug = append(sug, Step{Kind: FieldStep, Key: best})
		e.Suggestion = sug.String()
	}
	return e
}

// replacedFields are install values that no longer exist, with what took
// their place: refused by name rather than suggested as a typo, so a file
// written for an older mesh says what to change.
var replacedFields = map[string]string{
	"values.pilot.gatewaySecretNamespace": `values.pilot.gatewaySecretNamespace (one namespace, or "*") was replaced by ` +
		`values.pilot.gatewaySecretNamespaces, a list of the namespaces besides pilot's own to read gateway Secrets in: ` +
		`write gatewaySecretNamespaces: [NAMESPACE, ...], or ["*"] for every namespace (docs/gateways.md)`,
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// CheckPath reports whether a --set style path exists in the install API,
// naming the nearest valid path when it does not.
func CheckPath(path string) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	_, err = lookup(p)
	return err
}
