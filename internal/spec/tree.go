package spec

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"mesh.dev/mesh/manifests"
)

// chartValues is the union of the charts' default values that users may
// override under spec.values (the per-gateway section is driven by
// components.*Gateways instead).
func chartValues() map[string]any {
	out := map[string]any{}
	for _, c := range []string{manifests.Base, manifests.Pilot, manifests.Gateways} {
		b, err := manifests.ChartFile(c, "values.yaml")
		if err != nil {
			continue
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			panic(fmt.Sprintf("embedded chart %s has bad values.yaml: %v", c, err))
		}
		delete(v, "gateway")
		out = Merge(out, v).(map[string]any)
	}
	return out
}

// Merge lays overlay over base and returns the result without changing
// either: maps merge key by key, lists of named maps (gateways, env, ports)
// merge element by element on "name", anything else is replaced.
func Merge(base, overlay any) any {
	switch o := overlay.(type) {
	case map[string]any:
		b, ok := base.(map[string]any)
		if !ok {
			return deepCopy(o)
		}
		out := make(map[string]any, len(b)+len(o))
		for k, v := range b {
			out[k] = deepCopy(v)
		}
		for k, v := range o {
			if cur, ok := out[k]; ok {
				out[k] = Merge(cur, v)
			} else {
				out[k] = deepCopy(v)
			}
		}
		return out
	case []any:
		b, ok := base.([]any)
		if !ok || !allNamed(b) || !allNamed(o) {
			return deepCopy(o)
		}
		out := make([]any, 0, len(b)+len(o))
		index := map[string]int{}
		for _, e := range b {
			index[e.(map[string]any)["name"].(string)] = len(out)
			out = append(out, deepCopy(e))
		}
		for _, e := range o {
			name := e.(map[string]any)["name"].(string)
			if i, ok := index[name]; ok {
				out[i] = Merge(out[i], e)
			} else {
				index[name] = len(out)
				out = append(out, deepCopy(e))
			}
		}
		return out
	default:
		return overlay
	}
}

func allNamed(l []any) bool {
	for _, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"].(string); !ok {
			return false
		}
	}
	return true
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	default:
		return v
	}
}

// typedValue converts a --set value to the type the schema expects there.
func typedValue(raw string, n *node) (any, error) {
	if n.kind == leafNode {
		switch n.leaf {
		case reflect.String:
			if len(raw) >= 2 && (raw[0] == '"' && raw[len(raw)-1] == '"' || raw[0] == '\'' && raw[len(raw)-1] == '\'') {
				return raw[1 : len(raw)-1], nil
			}
			return raw, nil
		case reflect.Bool:
			b, err := strconv.ParseBool(raw)
			if err != nil {
				return nil, fmt.Errorf("value %q: expected true or false", raw)
			}
			return b, nil
		case reflect.Int:
			i, err := strconv.ParseInt(raw, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("value %q: expected an integer", raw)
			}
			return i, nil
		case reflect.Float64:
			f, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return nil, fmt.Errorf("value %q: expected a number", raw)
			}
			return f, nil
		}
	}
	// Elsewhere the value is read as YAML, so 3 is a number, true a bool,
	// {a: 1} a map and "3" (quoted) a string.
	var v any
	if err := yaml.Unmarshal([]byte(raw), &v); err != nil {
		return nil, fmt.Errorf("value %q is not valid YAML: %v", raw, cleanYAMLError(err))
	}
	v = normalize(v)
	switch n.kind {
	case structNode, mapNode:
		if _, ok := v.(map[string]any); !ok && v != nil {
			return nil, fmt.Errorf("value %q: expected a map, e.g. {key: value}", raw)
		}
	case listNode:
		if _, ok := v.([]any); !ok && v != nil {
			return nil, fmt.Errorf("value %q: expected a list, e.g. [a, b]", raw)
		}
	}
	return v, nil
}

// normalize turns YAML-decoded maps with non-string keys into string-keyed maps.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = normalize(x)
		}
		return out
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	case int:
		return int64(t)
	default:
		return v
	}
}

// setPath stores value at p inside tree, creating maps and list elements on the way.
func setPath(tree map[string]any, p Path, value any) error {
	var cur any = tree
	var store func(any)
	for i, s := range p {
		last := i == len(p)-1
		switch s.Kind {
		case FieldStep:
			m, ok := cur.(map[string]any)
			if !ok {
				if cur != nil {
					return fmt.Errorf("%s is not a map", Path(p[:i]).String())
				}
				m = map[string]any{}
				store(m)
			}
			if last {
				m[s.Key] = value
				return nil
			}
			cur = m[s.Key]
			key := s.Key
			store = func(v any) { m[key] = v }
		case IndexStep, SelectStep:
			l, ok := cur.([]any)
			if !ok && cur != nil {
				return fmt.Errorf("%s is not a list", Path(p[:i]).String())
			}
			at := -1
			if s.Kind == IndexStep {
				if s.Index > len(l) {
					return fmt.Errorf("%s has %d element(s): index [%d] is out of range (use [%d] to append)", Path(p[:i]).String(), len(l), s.Index, len(l))
				}
				at = s.Index
			} else {
				for j, e := range l {
					if m, ok := e.(map[string]any); ok && fmt.Sprint(m[s.Key]) == s.Value {
						at = j
						break
					}
				}
			}
			if at < 0 || at == len(l) {
				var fresh any
				if s.Kind == SelectStep {
					fresh = map[string]any{s.Key: s.Value}
				}
				l = append(l, fresh)
				at = len(l) - 1
				store(l)
			}
			if last {
				l[at] = value
				return nil
			}
			cur = l[at]
			list, idx := l, at
			store = func(v any) { list[idx] = v }
		}
	}
	return nil
}

// checkYAML validates a decoded YAML node against the schema, naming the
// line of the first key the install API does not know.
func checkYAML(y *yaml.Node, n *node, p Path) error {
	if n.kind == freeNode || y == nil {
		return nil
	}
	if y.Kind == yaml.AliasNode {
		return checkYAML(y.Alias, n, p)
	}
	if y.Tag == "!!null" {
		return nil
	}
	switch n.kind {
	case structNode, mapNode:
		if y.Kind != yaml.MappingNode {
			return &lineError{line: y.Line, err: fmt.Errorf("%s: expected a map, got %s", orRoot(p.String()), yamlKind(y))}
		}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			sub := append(append(Path{}, p...), Step{Kind: FieldStep, Key: k.Value})
			next := n.elem
			if n.kind == structNode {
				var ok bool
				if next, ok = n.fields[k.Value]; !ok {
					return &lineError{line: k.Line, err: unknownField(sub, len(sub)-1, n)}
				}
			}
			if err := checkYAML(v, next, sub); err != nil {
				return err
			}
		}
	case listNode:
		if y.Kind != yaml.SequenceNode {
			return &lineError{line: y.Line, err: fmt.Errorf("%s: expected a list, got %s", orRoot(p.String()), yamlKind(y))}
		}
		for i, e := range y.Content {
			sub := append(append(Path{}, p...), Step{Kind: IndexStep, Index: i})
			if err := checkYAML(e, n.elem, sub); err != nil {
				return err
			}
		}
	case leafNode:
		if y.Kind != yaml.ScalarNode {
			return &lineError{line: y.Line, err: fmt.Errorf("%s: expected a %s, got %s", p.String(), n.leaf, yamlKind(y))}
		}
		want := map[reflect.Kind]string{reflect.Bool: "!!bool", reflect.Int: "!!int", reflect.Float64: "!!float"}[n.leaf]
		if want != "" && y.Tag != want && !(n.leaf == reflect.Float64 && y.Tag == "!!int") {
			return &lineError{line: y.Line, err: fmt.Errorf("%s: expected a %s, got %q", p.String(), n.leaf, y.Value)}
		}
	}
	return nil
}

func yamlKind(y *yaml.Node) string {
	switch y.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", y.Value)
	}
}

// lineError ties an error to a line of the file being read.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

// cleanYAMLError drops the library's "yaml: " prefix.
func cleanYAMLError(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}
