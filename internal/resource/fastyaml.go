package resource

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	yaml "go.yaml.in/yaml/v3"
)

// fastYAML parses the plain block style nearly every Kubernetes manifest is
// written in (block mappings and sequences, plain and simply quoted scalars,
// comments, "---" separators) several times faster than a full YAML parser.
// Anything outside that subset (flow collections other than {} and [],
// anchors, aliases, tags, block scalars, multi-line scalars, escapes beyond
// the simple ones, tabs) makes it give up, and the caller parses the file
// with yaml.v3 instead. Scalars are typed by the same function the yaml.v3
// path uses, and a differential fuzz test holds the two paths to the same
// results.
func fastYAML(name string, data []byte) ([]*Raw, bool) {
	var out []*Raw
	_, ok, _ := fastYAMLEach(name, data, func(r *Raw) error { out = append(out, r); return nil })
	if !ok {
		return nil, false
	}
	return out, true
}

// fastYAMLEach is fastYAML handing each document to emit as soon as it is
// parsed, so a caller can decode and drop it before the next one is read.
// When the fast path gives up part way, ok is false and last is the first
// line of the last document emitted (0 for none): the documents up to it
// are what the full parser would have read, and the caller goes on from
// there. An error from emit stops the parse and is returned.
func fastYAMLEach(name string, data []byte, emit func(*Raw) error) (last int, ok bool, err error) {
	if !plainText(data) {
		return 0, false, nil
	}
	p := &fastParser{rest: unsafe.String(unsafe.SliceData(data), len(data)), strs: map[string]any{}}
	for {
		p.forget()
		p.skipBlank()
		if !p.more() {
			return last, true, nil
		}
		if p.atDocMarker() {
			if p.failed {
				return last, false, nil
			}
			p.i++
			continue
		}
		if p.cur().indent != 0 {
			return last, false, nil
		}
		start := p.i + 1
		v, ok := p.block(0)
		if !ok || p.failed {
			return last, false, nil
		}
		m, isMap := v.(map[string]any)
		if !isMap {
			return last, false, nil
		}
		r := &Raw{Object: m, Source: Source{File: name, Line: start}}
		r.itemLines = p.itemLines
		p.itemLines = nil
		p.skipBlank()
		if p.more() && !p.atDocMarker() {
			return last, false, nil // content after the document at a lower indent
		}
		if err := emit(r); err != nil {
			return last, false, err
		}
		last = start
	}
}

// plainText reports whether data has only characters the fast path handles
// the way a YAML parser does: printable text, tabs and \n or \r\n line
// ends. Other line breaks, control characters, byte order marks and
// invalid UTF-8 are left to the full parser.
func plainText(data []byte) bool {
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\r':
				if i+1 >= len(data) || data[i+1] != '\n' {
					return false
				}
			case c < 0x20 && c != '\n' && c != '\t', c == 0x7f:
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError || r < 0xA0 || r == 0x2028 || r == 0x2029 || r == 0xFEFF ||
			(r >= 0xD800 && r < 0xE000) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += size
	}
	return true
}

// fastLine is one line of the file; p.lines[i-p.base] is line number i+1.
type fastLine struct {
	indent int    // leading spaces
	text   string // content after the indent, comment-only lines excluded
	blank  bool
}

// cutLine cuts the next line off s without copying it: the line is a
// substring of the file text, read only while the file is parsed (every
// key and value kept is an interned copy).
func cutLine(s string) (fastLine, string) {
	end := strings.IndexByte(s, '\n')
	var line string
	if end < 0 {
		line, s = s, ""
	} else {
		line, s = s[:end], s[end+1:]
	}
	line = strings.TrimSuffix(line, "\r")
	ind := 0
	for ind < len(line) && line[ind] == ' ' {
		ind++
	}
	text := line[ind:]
	blank := text == "" || text[0] == '#'
	if !blank {
		text = strings.TrimRight(text, " ")
	}
	return fastLine{indent: ind, text: text, blank: blank}, s
}

// more reports whether the file has a line p.i, cutting it when needed.
// Lines are cut as the parse reaches them and forgotten at each document
// boundary, so a large file never has all its lines split at once.
func (p *fastParser) more() bool {
	for p.i-p.base >= len(p.lines) {
		if p.rest == "" {
			return false
		}
		var l fastLine
		l, p.rest = cutLine(p.rest)
		p.lines = append(p.lines, l)
	}
	return true
}

// cur returns line p.i, which more has reported present.
func (p *fastParser) cur() fastLine { p.more(); return p.lines[p.i-p.base] }

// forget drops the lines before p.i (a document boundary: nothing looks
// back across it).
func (p *fastParser) forget() {
	if n := p.i - p.base; n > 0 && n <= len(p.lines) {
		// In place: a fresh slice per document (10k of them in a large
		// file) was a sixth of the whole analysis's allocation.
		p.lines = p.lines[:copy(p.lines, p.lines[n:])]
		p.base = p.i
	}
}

type fastParser struct {
	lines     []fastLine // lines base, base+1, ... as cut so far
	base      int
	rest      string // the file text after the lines cut so far
	i         int
	failed    bool
	depth     int
	itemLines []int
	// strs interns keys and string values, each held as an interface
	// value made once. Without it every name and label kept after
	// decoding would pin the whole file's text in memory, the same
	// namespace, label or host would be held once per use, and each use
	// would allocate its own interface value.
	strs map[string]any
}

// box returns the file's single copy of s, detached from the file text,
// as an interface value.
func (p *fastParser) box(s string) any {
	if v, ok := p.strs[s]; ok {
		return v
	}
	c := strings.Clone(s)
	v := any(c)
	p.strs[c] = v
	return v
}

// intern returns the file's single copy of s.
func (p *fastParser) intern(s string) string { return p.box(s).(string) }

// value interns v when it is a string.
func (p *fastParser) value(v any) any {
	if s, ok := v.(string); ok {
		return p.box(s)
	}
	return v
}

func (p *fastParser) skipBlank() {
	for p.more() && p.cur().blank {
		p.i++
	}
}

func (p *fastParser) atDocMarker() bool {
	l := p.cur()
	if l.indent != 0 {
		return false
	}
	if l.text == "---" || strings.HasPrefix(l.text, "--- #") {
		return true
	}
	if strings.HasPrefix(l.text, "---") || strings.HasPrefix(l.text, "...") || strings.HasPrefix(l.text, "%") {
		p.failed = true
		return true
	}
	return false
}

func (p *fastParser) fail() (any, bool) {
	p.failed = true
	return nil, false
}

// block parses the node whose first line is the current line, at indent.
func (p *fastParser) block(indent int) (any, bool) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 100 {
		return p.fail()
	}
	l := p.cur()
	if l.text == "-" || strings.HasPrefix(l.text, "- ") {
		return p.sequence(indent)
	}
	return p.mapping(indent, l.text, p.i+1)
}

// mapping parses entries at indent; first is the text of the first entry,
// which may start inside a sequence item ("- key: value").
func (p *fastParser) mapping(indent int, first string, _ int) (any, bool) {
	m := map[string]any{}
	text := first
	topItems := p.depth == 1
	for {
		key, rest, ok := splitKey(text)
		if !ok {
			return p.fail()
		}
		p.i++
		if rest == "" {
			p.skipBlank()
			var v any
			if p.more() && !p.docMarkerHere() {
				nl := p.cur()
				switch {
				case nl.indent > indent:
					var ok bool
					if v, ok = p.nested(nl.indent, topItems && key == "items"); !ok {
						return p.fail()
					}
				case nl.indent == indent && (nl.text == "-" || strings.HasPrefix(nl.text, "- ")):
					var ok bool
					if v, ok = p.nested(nl.indent, topItems && key == "items"); !ok {
						return p.fail()
					}
				}
			}
			m[p.intern(key)] = v
		} else {
			v, ok := p.inlineValue(rest)
			if !ok {
				return p.fail()
			}
			m[p.intern(key)] = v
			// A following line indented deeper would continue the scalar.
			p.skipBlank()
			if p.more() && p.cur().indent > indent && !p.docMarkerHere() {
				return p.fail()
			}
		}
		p.skipBlank()
		if !p.more() || p.docMarkerHere() {
			return m, true
		}
		nl := p.cur()
		if nl.indent < indent {
			return m, true
		}
		if nl.indent > indent || nl.text == "-" || strings.HasPrefix(nl.text, "- ") {
			if nl.indent == indent {
				return m, true // a sequence item of an enclosing list
			}
			return p.fail()
		}
		text = nl.text
	}
}

func (p *fastParser) docMarkerHere() bool {
	l := p.cur()
	return l.indent == 0 && (strings.HasPrefix(l.text, "---") || strings.HasPrefix(l.text, "..."))
}

func (p *fastParser) nested(indent int, recordItems bool) (any, bool) {
	if !recordItems {
		return p.block(indent)
	}
	saved := p.itemLines
	p.itemLines = []int{}
	v, ok := p.sequenceRecording(indent)
	if !ok {
		p.itemLines = saved
	}
	return v, ok
}

// sequenceRecording parses a sequence and records its items' lines (for
// the items of a List).
func (p *fastParser) sequenceRecording(indent int) (any, bool) {
	l := p.cur()
	if l.text != "-" && !strings.HasPrefix(l.text, "- ") {
		p.itemLines = nil
		return p.block(indent)
	}
	return p.sequenceWith(indent, true)
}

func (p *fastParser) sequence(indent int) (any, bool) { return p.sequenceWith(indent, false) }

func (p *fastParser) sequenceWith(indent int, record bool) (any, bool) {
	s := []any{}
	for {
		l, lnum := p.cur(), p.i+1
		if l.indent != indent || (l.text != "-" && !strings.HasPrefix(l.text, "- ")) {
			return p.fail()
		}
		rest := ""
		if l.text != "-" {
			rest = strings.TrimLeft(l.text[2:], " ")
		}
		var v any
		switch {
		case rest == "" || rest[0] == '#':
			p.i++
			p.skipBlank()
			if p.more() && !p.docMarkerHere() && p.cur().indent > indent {
				if record {
					p.itemLines = append(p.itemLines, p.i+1)
				}
				var ok bool
				if v, ok = p.block(p.cur().indent); !ok {
					return p.fail()
				}
			} else if record {
				p.itemLines = append(p.itemLines, lnum)
			}
		case rest == "-" || strings.HasPrefix(rest, "- "):
			return p.fail()
		default:
			if record {
				p.itemLines = append(p.itemLines, lnum)
			}
			if _, _, isKey := splitKey(rest); isKey {
				var ok bool
				p.depth++
				v, ok = p.mapping(indent+len(l.text)-len(rest), rest, lnum)
				p.depth--
				if !ok {
					return p.fail()
				}
			} else {
				var ok bool
				if v, ok = p.inlineValue(rest); !ok {
					return p.fail()
				}
				p.i++
				p.skipBlank()
				if p.more() && p.cur().indent > indent && !p.docMarkerHere() {
					return p.fail()
				}
			}
		}
		s = append(s, v)
		p.skipBlank()
		if !p.more() || p.docMarkerHere() {
			return s, true
		}
		nl := p.cur()
		if nl.indent < indent {
			return s, true
		}
		if nl.indent == indent && (nl.text == "-" || strings.HasPrefix(nl.text, "- ")) {
			continue
		}
		if nl.indent == indent {
			return s, true // the next key of the mapping that holds this list
		}
		return p.fail()
	}
}

// splitKey splits "key: rest" or "key:" into the key and what follows,
// and reports false for anything that is not a simple mapping entry.
func splitKey(text string) (key, rest string, ok bool) {
	if text == "" {
		return "", "", false
	}
	switch text[0] {
	case '"', '\'':
		q, n, ok := quoted(text)
		if !ok || n > 512 {
			return "", "", false
		}
		after := text[n:]
		if after == ":" {
			return q, "", true
		}
		if !strings.HasPrefix(after, ": ") {
			return "", "", false
		}
		return q, strings.TrimLeft(after[2:], " "), true
	case '-', '?', '[', ']', '{', '}', '&', '*', '!', '|', '>', '%', '@', '`', '#', ',', ':':
		return "", "", false
	}
	idx := strings.Index(text, ": ")
	if idx < 0 {
		if !strings.HasSuffix(text, ":") {
			return "", "", false
		}
		idx = len(text) - 1
	}
	key = text[:idx]
	// YAML limits implicit keys to 1024 characters; long ones are left to
	// the full parser, which knows exactly where the limit falls.
	if len(key) > 512 || key == "<<" || strings.Contains(key, " #") || strings.ContainsAny(key, "\t") || strings.HasSuffix(key, " ") {
		return "", "", false
	}
	rest = strings.TrimLeft(text[idx+1:], " ")
	if strings.HasPrefix(rest, "#") {
		rest = ""
	}
	return key, rest, true
}

// inlineValue types a scalar written after "key: " or "- "; strings come
// back interned.
func (p *fastParser) inlineValue(s string) (any, bool) {
	switch s[0] {
	case '"', '\'':
		q, n, ok := quoted(s)
		if !ok {
			return nil, false
		}
		after := strings.TrimLeft(s[n:], " ")
		if after != "" && after[0] != '#' {
			return nil, false
		}
		return p.box(q), true
	case '{', '[':
		if s == "{}" || strings.HasPrefix(s, "{} #") {
			return map[string]any{}, true
		}
		if s == "[]" || strings.HasPrefix(s, "[] #") {
			return []any{}, true
		}
		return nil, false
	case '&', '*', '!', '|', '>', '%', '@', '`', '#', ',', '?', ']', '}', ':':
		return nil, false
	case '-':
		if s == "-" || strings.HasPrefix(s, "- ") {
			return nil, false
		}
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimRight(s[:i], " ")
	}
	if strings.Contains(s, ": ") || strings.HasSuffix(s, ":") || strings.ContainsAny(s, "\t") {
		return nil, false
	}
	if c := s[0]; (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
		switch s {
		case "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL":
		default:
			return p.box(s), true
		}
	}
	return p.value(plainScalar(s)), true
}

// plainScalar types a plain scalar exactly as the yaml.v3 path does.
func plainScalar(s string) any {
	c := s[0]
	if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
		switch s {
		case "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL":
		default:
			return s
		}
	}
	if n, ok := decimal(s); ok {
		return n
	}
	// A YAML number ends in a digit, '.', or a hex digit (0x1F), and
	// booleans and null start with a letter (handled above): "5s", "64Mi"
	// or "100m" can only be strings, and the resolver would spend parse
	// errors finding that out.
	if c := s[len(s)-1]; !isLetter(s[0]) && ((c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z')) {
		return s
	}
	v, _ := scalar(&yaml.Node{Kind: yaml.ScalarNode, Value: s})
	return v
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// decimal reads a plain decimal integer without a sign or leading zero
// (ports, replicas, weights), the common case the YAML resolver is slow at.
func decimal(s string) (int64, bool) {
	if len(s) > 18 || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// quoted reads a quoted scalar at the start of s that closes on the same
// line, returning its value and length; escapes other than the simple ones
// make it give up.
func quoted(s string) (string, int, bool) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == q:
			return b.String(), i + 1, true
		case c == '\\' && q == '"':
			if i+1 >= len(s) {
				return "", 0, false
			}
			i++
			switch s[i] {
			case '"', '\\', '/':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				return "", 0, false
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}
