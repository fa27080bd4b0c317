package resource

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// Locator finds the line of a field inside objects that were read from
// files. It parses a file again only when asked about it, so reading stays
// fast and only the few objects that get a message pay for positions.
type Locator struct {
	mu    sync.Mutex
	docs  map[string][]*yaml.Node
	stdin []byte
}

// NewLocator returns a Locator; stdin is the data read from "-", if any.
func NewLocator(stdin []byte) *Locator {
	return &Locator{docs: map[string][]*yaml.Node{}, stdin: stdin}
}

// Line returns the line of the field at path (such as
// spec.http[0].route[1].destination.host) in the object that starts at
// src, or src.Line when the field cannot be found.
func (l *Locator) Line(src Source, path string) int {
	if src.File == "" || path == "" {
		return src.Line
	}
	obj := l.object(src)
	if obj == nil {
		return src.Line
	}
	n := obj
	best := src.Line
	for _, seg := range splitPath(path) {
		n = child(n, seg)
		if n == nil {
			break
		}
		best = n.Line
	}
	return best
}

func (l *Locator) object(src Source) *yaml.Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	docs, ok := l.docs[src.File]
	if !ok {
		docs = l.parse(src.File)
		l.docs[src.File] = docs
	}
	for _, d := range docs {
		if found := findObject(d, src.Line); found != nil {
			return found
		}
	}
	return nil
}

func (l *Locator) parse(file string) []*yaml.Node {
	var data []byte
	if file == StdinName {
		data = l.stdin
	} else {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil
		}
		data = b
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) || err != nil {
			return out
		}
		if len(n.Content) > 0 {
			out = append(out, n.Content[0])
		}
	}
}

// findObject returns the mapping that starts at line: a document root, an
// item of a List, or an element of a top-level JSON array.
func findObject(n *yaml.Node, line int) *yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		if n.Line == line {
			return n
		}
		if items := mappingValue(n, "items"); items != nil && items.Kind == yaml.SequenceNode {
			return findObject(items, line)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.MappingNode && c.Line == line {
				return c
			}
		}
	}
	return nil
}

type pathSeg struct {
	key   string
	index int // -1 for a key
}

// splitPath turns a.b[0]["k"] into its segments.
func splitPath(p string) []pathSeg {
	var out []pathSeg
	for len(p) > 0 {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return out
			}
			inner := p[1:end]
			if strings.HasPrefix(inner, "\"") {
				// A quoted key may itself contain "]".
				if q, err := strconv.QuotedPrefix(inner); err == nil {
					end = 1 + len(q)
					if k, err := strconv.Unquote(q); err == nil {
						out = append(out, pathSeg{key: k, index: -1})
					}
					p = p[min(end+1, len(p)):]
					continue
				}
			}
			if i, err := strconv.Atoi(inner); err == nil {
				out = append(out, pathSeg{index: i})
			}
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, pathSeg{key: p[:end], index: -1})
			p = p[end:]
		}
	}
	return out
}

func child(n *yaml.Node, seg pathSeg) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	if seg.index >= 0 {
		if n.Kind == yaml.SequenceNode && seg.index < len(n.Content) {
			return n.Content[seg.index]
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == seg.key {
			v := n.Content[i+1]
			// Point at the key for scalars and at the first entry for
			// collections written on the following lines.
			if v.Kind == yaml.ScalarNode || v.Line == n.Content[i].Line {
				return v
			}
			return &yaml.Node{Kind: v.Kind, Line: n.Content[i].Line, Content: v.Content, Alias: v.Alias}
		}
	}
	return nil
}
