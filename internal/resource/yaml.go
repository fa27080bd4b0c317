package resource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// maxAliasExpansions bounds alias expansion so a small file cannot blow up
// into gigabytes (the "billion laughs" shape).
const maxAliasExpansions = 10000

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// readYAML parses data, by the fast path when it can (block reports that
// it did).
func readYAML(name string, data []byte) (raws []*Raw, block bool, err error) {
	block, err = readYAMLEach(name, data, func(r *Raw) error { raws = append(raws, r); return nil })
	return raws, block, err
}

// readYAMLEach parses data and hands each document to emit as it is
// parsed: by the fast path when it can (block reports that it read the
// whole file), else by the full parser, which goes on after the documents
// the fast path already handed over.
func readYAMLEach(name string, data []byte, emit func(*Raw) error) (block bool, err error) {
	last, ok, err := fastYAMLEach(name, data, emit)
	if err != nil || ok {
		return ok, err
	}
	return false, readYAMLFullEach(name, data, last, emit)
}

// readYAMLFull parses data with the full YAML parser.
func readYAMLFull(name string, data []byte) ([]*Raw, error) {
	var out []*Raw
	err := readYAMLFullEach(name, data, 0, func(r *Raw) error { out = append(out, r); return nil })
	return out, err
}

// readYAMLFullEach parses data with the full YAML parser and hands emit
// each document that starts after line after.
func readYAMLFullEach(name string, data []byte, after int, emit func(*Raw) error) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return yamlError(name, err)
		}
		if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
			continue
		}
		root := n.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document, e.g. a trailing "---"
		}
		if root.Line <= after {
			continue // handed over by the fast path already
		}
		if root.Kind != yaml.MappingNode {
			return &ParseError{File: name, Line: root.Line, Err: fmt.Errorf("expected a Kubernetes object (a mapping with apiVersion and kind), found a %s", nodeKindName(root))}
		}
		c := converter{file: name}
		v, err := c.convert(root, 0)
		if err != nil {
			return err
		}
		r := &Raw{Object: v.(map[string]any), Source: Source{File: name, Line: root.Line}}
		if items := mappingValue(root, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for _, it := range items.Content {
				r.itemLines = append(r.itemLines, it.Line)
			}
		}
		if err := emit(r); err != nil {
			return err
		}
	}
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func yamlError(name string, err error) error {
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return &ParseError{File: name, Line: line, Err: fmt.Errorf("invalid YAML: %s", msg)}
}

func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar " + strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// converter turns yaml.v3 nodes into the plain values encoding/json would
// produce (map[string]any, []any, string, int64, float64, bool, nil).
type converter struct {
	file    string
	aliases int
}

func (c *converter) convert(n *yaml.Node, depth int) (any, error) {
	if depth > 200 {
		return nil, &ParseError{File: c.file, Line: n.Line, Err: errors.New("document nests deeper than 200 levels")}
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				if err := c.merge(m, v, depth); err != nil {
					return nil, err
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, &ParseError{File: c.file, Line: k.Line, Err: errors.New("mapping keys must be strings")}
			}
			val, err := c.convert(v, depth+1)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := c.convert(e, depth+1)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.AliasNode:
		c.aliases++
		if c.aliases > maxAliasExpansions || n.Alias == nil {
			return nil, &ParseError{File: c.file, Line: n.Line, Err: errors.New("too many YAML alias expansions")}
		}
		return c.convert(n.Alias, depth+1)
	case yaml.ScalarNode:
		return scalar(n)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.convert(n.Content[0], depth+1)
	}
	return nil, &ParseError{File: c.file, Line: n.Line, Err: errors.New("unsupported YAML node")}
}

func (c *converter) merge(into map[string]any, v *yaml.Node, depth int) error {
	src := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		src = v.Content
	}
	for _, s := range src {
		val, err := c.convert(s, depth+1)
		if err != nil {
			return err
		}
		m, ok := val.(map[string]any)
		if !ok {
			return &ParseError{File: c.file, Line: s.Line, Err: errors.New("merge key << needs a mapping")}
		}
		for k, x := range m {
			if _, set := into[k]; !set {
				into[k] = x
			}
		}
	}
	return nil
}

func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return n.Value, nil
		}
		return b, nil
	case "!!int":
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return i, nil
		}
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		var f float64
		if err := n.Decode(&f); err == nil {
			return f, nil
		}
		return n.Value, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return n.Value, nil
		}
		return f, nil
	}
	return n.Value, nil
}
