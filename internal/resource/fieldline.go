package resource

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// Index keeps, for every file read, what finding a field's line needs:
// the file's text, where each object starts, and whether the file is in
// the plain block style the fast reader handles. It is filled once, while
// the files are read, so a finding never reads or parses a file again: in
// a block-style file a field is found by walking the indentation of the
// one object's lines from the object's first line. Only files outside
// that style (JSON, flow style, anchors) are parsed again, once, from the
// kept text, the first time a finding in them needs a line. The text of a
// file is its read-only memory mapping where the system allows one (see
// readFile), so keeping it costs no heap.
type Index struct {
	mu    sync.Mutex
	files map[string]*fileIndex
}

type fileIndex struct {
	data []byte
	// objects holds the first line of every object read from the file
	// and the byte offset where that line starts, in line order.
	objects []objectStart
	block   bool

	once sync.Once
	docs []*yaml.Node
}

type objectStart struct{ line, off int32 }

// NewIndex returns an empty Index.
func NewIndex() *Index { return &Index{files: map[string]*fileIndex{}} }

// add records a file read as data whose objects start at lines (in
// order); block says the fast reader parsed it.
func (x *Index) add(name string, data []byte, block bool, lines []int) {
	if x == nil {
		return
	}
	f := &fileIndex{data: data, block: block}
	if block {
		f.objects = make([]objectStart, 0, len(lines))
		line, off := 1, 0
		for _, want := range lines {
			for line < want {
				i := bytes.IndexByte(data[off:], '\n')
				if i < 0 {
					break
				}
				off += i + 1
				line++
			}
			if line == want {
				f.objects = append(f.objects, objectStart{int32(want), int32(off)})
			}
		}
	}
	x.mu.Lock()
	x.files[name] = f
	x.mu.Unlock()
}

// AddDocument records a file that is not a Kubernetes manifest (a
// MeshNetworks file) whose text the caller has read, so that fields of its
// one object, starting at line 1, can be found too.
func (x *Index) AddDocument(name string, data []byte) {
	_, ok, _ := fastYAMLEach(name, data, func(*Raw) error { return nil })
	x.add(name, data, ok, []int{firstContentLine(data)})
}

// FirstContentLine returns the line where a document added with
// AddDocument starts for the Locator: its first line that is neither
// blank nor a comment.
func FirstContentLine(data []byte) int { return firstContentLine(data) }

// firstContentLine returns the line of the first line that is neither
// blank nor a comment.
func firstContentLine(data []byte) int {
	for n, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); t != "" && t[0] != '#' && t != "---" {
			return n + 1
		}
	}
	return 1
}

// Locator finds the line of a field inside objects read from files, from
// an Index built while they were read.
type Locator struct{ idx *Index }

// NewLocator returns a Locator over idx.
func NewLocator(idx *Index) *Locator { return &Locator{idx: idx} }

// Line returns the line of the field at path (such as
// spec.http[0].route[1].destination.host) in the object that starts at
// src, or src.Line when the field cannot be found. The deepest part of the
// path that exists gives the line.
func (l *Locator) Line(src Source, path string) int {
	if src.File == "" || path == "" || l == nil || l.idx == nil {
		return src.Line
	}
	l.idx.mu.Lock()
	f := l.idx.files[src.File]
	l.idx.mu.Unlock()
	if f == nil || src.Line < 1 {
		return src.Line
	}
	segs := splitPath(path)
	if f.block {
		return f.walk(src.Line, segs)
	}
	obj := f.object(src.Line)
	if obj == nil {
		return src.Line
	}
	n := obj
	best := src.Line
	for _, seg := range segs {
		n = child(n, seg)
		if n == nil {
			break
		}
		best = n.Line
	}
	return best
}

// blockLine is one line of a block-style file as the walk sees it: raw is
// the column of its first character (a sequence dash included), col and
// text the column and content after a leading "- ".
type blockLine struct {
	raw, col int
	text     string
	dash     bool
	blank    bool
	end      bool // past the end of the file or at a document marker
}

// cursor reads the lines of one object on demand, from the offset where
// the object's first line starts.
type cursor struct {
	data []byte
	base int   // 0-based number of the object's first line
	offs []int // offs[k] is where line base+k starts
}

// line returns line i (0-based, at or after the object's first line).
func (c *cursor) line(i int) blockLine {
	k := i - c.base
	for len(c.offs) <= k+1 {
		last := c.offs[len(c.offs)-1]
		if last > len(c.data) {
			break
		}
		n := bytes.IndexByte(c.data[last:], '\n')
		if n < 0 {
			c.offs = append(c.offs, len(c.data)+1)
			continue
		}
		c.offs = append(c.offs, last+n+1)
	}
	if k < 0 || k+1 >= len(c.offs) || c.offs[k] > len(c.data) {
		return blockLine{end: true}
	}
	s := string(c.data[c.offs[k] : c.offs[k+1]-1])
	s = strings.TrimSuffix(s, "\r")
	raw := 0
	for raw < len(s) && s[raw] == ' ' {
		raw++
	}
	text := s[raw:]
	if text == "" || text[0] == '#' {
		return blockLine{raw: raw, blank: true}
	}
	if raw == 0 && (strings.HasPrefix(text, "---") || strings.HasPrefix(text, "...")) {
		return blockLine{end: true}
	}
	text = strings.TrimRight(text, " ")
	bl := blockLine{raw: raw, col: raw, text: text}
	if text == "-" || strings.HasPrefix(text, "- ") {
		bl.dash = true
		rest := strings.TrimLeft(text[1:], " ")
		bl.col = raw + len(text) - len(rest)
		bl.text = rest
	}
	return bl
}

// next returns the first non-blank line after i, and its number.
func (c *cursor) next(i int) (blockLine, int) {
	for i++; ; i++ {
		if l := c.line(i); !l.blank {
			return l, i
		}
	}
}

// walk follows segs from the object whose first line is start (1-based)
// through the indentation of the lines, and returns the line of the
// deepest segment found. A mapping at column col runs until a line starts
// left of col; its keys are the entries whose content starts at col. A
// sequence's items are the dash lines at its dash column.
func (f *fileIndex) walk(start int, segs []pathSeg) int {
	best := start
	at := sort.Search(len(f.objects), func(k int) bool { return int(f.objects[k].line) >= start })
	if at == len(f.objects) || int(f.objects[at].line) != start {
		return best
	}
	i := start - 1
	c := &cursor{data: f.data, base: i, offs: []int{int(f.objects[at].off)}}
	first := c.line(i)
	if first.end || first.blank {
		return best
	}
	const (
		inMapping = iota
		inSequence
		inScalar
	)
	state, col := inMapping, first.col
	for _, seg := range segs {
		switch {
		case state == inMapping && seg.index < 0:
			found := -1
			var rest string
			for k := i; ; k++ {
				l := c.line(k)
				if l.end || (!l.blank && k > i && l.raw < col) {
					break
				}
				if l.blank || l.col != col || (k > i && l.dash && l.raw == col) {
					continue
				}
				if key, r, ok := splitKey(l.text); ok && key == seg.key {
					found, rest = k, r
					break
				}
			}
			if found < 0 {
				return best
			}
			best = found + 1
			if rest != "" {
				state = inScalar
				continue
			}
			nl, n := c.next(found)
			switch {
			case nl.end:
				state = inScalar
			case nl.raw > col && nl.dash, nl.raw == col && nl.dash:
				state, col, i = inSequence, nl.raw, n
			case nl.raw > col:
				state, col, i = inMapping, nl.col, n
			default:
				state = inScalar // null
			}
		case state == inSequence && seg.index >= 0:
			found, count := -1, 0
			for k := i; ; k++ {
				l := c.line(k)
				if l.end || (!l.blank && l.raw < col) {
					break
				}
				if l.blank || l.raw != col {
					continue
				}
				if !l.dash {
					break // the next key of the mapping holding the list
				}
				if count == seg.index {
					found = k
					break
				}
				count++
			}
			if found < 0 {
				return best
			}
			l := c.line(found)
			if l.text != "" {
				best = found + 1
				if _, _, isKey := splitKey(l.text); isKey {
					state, col, i = inMapping, l.col, found
				} else {
					state = inScalar
				}
				continue
			}
			nl, n := c.next(found)
			if nl.end || nl.raw <= col {
				best = found + 1
				state = inScalar
				continue
			}
			best = n + 1
			if nl.dash {
				state, col, i = inSequence, nl.raw, n
			} else {
				state, col, i = inMapping, nl.col, n
			}
		default:
			return best
		}
	}
	return best
}

// object returns the parsed object that starts at line, parsing the file's
// kept text the first time it is asked about.
func (f *fileIndex) object(line int) *yaml.Node {
	f.once.Do(func() {
		dec := yaml.NewDecoder(bytes.NewReader(f.data))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); err != nil {
				return
			}
			if len(n.Content) > 0 {
				f.docs = append(f.docs, n.Content[0])
			}
		}
	})
	for _, d := range f.docs {
		if found := findObject(d, line); found != nil {
			return found
		}
	}
	return nil
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
