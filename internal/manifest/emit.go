package manifest

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// EncodeYAML writes a JSON-like value (maps, lists, strings, numbers, bools,
// nil) as block-style YAML with sorted keys. It is a small emitter of our
// own because manifests are printed on every generate and the general YAML
// libraries spend most of the command's time here; its output reads back
// identically through any YAML decoder (the tests round-trip it).
func EncodeYAML(w io.Writer, v any) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	e := emitter{w: bw}
	e.value(v, 0, false)
	if e.err != nil {
		return e.err
	}
	return bw.Flush()
}

type emitter struct {
	w   *bufio.Writer
	err error
}

func (e *emitter) str(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

const spaces = "                                                                "

func (e *emitter) indent(n int) {
	for n > len(spaces) {
		e.str(spaces)
		n -= len(spaces)
	}
	e.str(spaces[:n])
}

// value writes v; inline says the cursor sits after "key:" or "- " on a line already.
func (e *emitter) value(v any, ind int, inline bool) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			e.scalarLine(inline, "{}")
			return
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if inline {
			e.str("\n")
		}
		for _, k := range keys {
			e.indent(ind)
			e.mapEntry(k, t[k], ind)
		}
	case []any:
		if len(t) == 0 {
			e.scalarLine(inline, "[]")
			return
		}
		if inline {
			e.str("\n")
		}
		for _, x := range t {
			e.indent(ind)
			e.str("-")
			e.listItem(x, ind)
		}
	default:
		e.scalarLine(inline, "")
		e.scalar(v, ind)
	}
}

func (e *emitter) scalarLine(inline bool, s string) {
	if inline {
		e.str(" ")
	}
	if s != "" {
		e.str(s + "\n")
	}
}

// mapEntry writes "key: value" at the current position; the value's own lines go at ind+2.
func (e *emitter) mapEntry(k string, v any, ind int) {
	key := quoteIfNeeded(k)
	if len(key) > 1000 {
		// YAML limits implicit keys to 1024 characters; longer ones need the explicit "?" form.
		e.str("? " + key + "\n")
		e.indent(ind)
	} else {
		e.str(key)
	}
	e.str(":")
	switch t := v.(type) {
	case []any:
		// Lists under a key sit at the key's indentation, as kubectl prints them.
		if len(t) == 0 {
			e.str(" []\n")
			return
		}
		e.str("\n")
		for _, x := range t {
			e.indent(ind)
			e.str("-")
			e.listItem(x, ind)
		}
	default:
		e.value(v, ind+2, true)
	}
}

// listItem writes one element after its "-"; maps start on the dash's line.
func (e *emitter) listItem(x any, ind int) {
	switch t := x.(type) {
	case map[string]any:
		if len(t) == 0 {
			e.str(" {}\n")
			return
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i == 0 {
				e.str(" ")
			} else {
				e.indent(ind + 2)
			}
			e.mapEntry(k, t[k], ind+2)
		}
	case []any:
		if len(t) == 0 {
			e.str(" []\n")
			return
		}
		e.str("\n")
		for _, y := range t {
			e.indent(ind + 2)
			e.str("-")
			e.listItem(y, ind+2)
		}
	default:
		e.str(" ")
		e.scalar(x, ind+2)
	}
}

func (e *emitter) scalar(v any, ind int) {
	switch t := v.(type) {
	case nil:
		e.str("null\n")
	case bool:
		e.str(strconv.FormatBool(t) + "\n")
	case string:
		if block, ok := literalBlock(t, ind); ok {
			e.str(block)
			return
		}
		e.str(quoteIfNeeded(t) + "\n")
	case int64:
		e.str(strconv.FormatInt(t, 10) + "\n")
	case int:
		e.str(strconv.Itoa(t) + "\n")
	case float64:
		e.str(formatFloat(t) + "\n")
	default:
		e.err = fmt.Errorf("cannot encode %T as YAML", v)
	}
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	case math.IsNaN(f):
		return ".nan"
	case f == math.Trunc(f) && math.Abs(f) < 1e15:
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// literalBlock writes a multi-line string as a "|" block when that reads
// back exactly; ok is false when it would not.
func literalBlock(s string, ind int) (string, bool) {
	if !strings.Contains(s, "\n") {
		return "", false
	}
	body := s
	chomp := "|-"
	if strings.HasSuffix(s, "\n") {
		body = s[:len(s)-1]
		chomp = "|"
		if strings.HasSuffix(body, "\n") {
			return "", false // several trailing newlines need "|+"; quoting is simpler
		}
	}
	lines := strings.Split(body, "\n")
	if lines[0] == "" || lines[0][0] == ' ' || lines[0][0] == '\t' {
		return "", false
	}
	for _, l := range lines {
		for _, r := range l {
			if r == '\t' || r < 0x20 || r == 0x7f || r == '\ufeff' {
				return "", false
			}
		}
		if strings.HasSuffix(l, " ") {
			return "", false
		}
	}
	var b strings.Builder
	b.WriteString(chomp + "\n")
	pad := strings.Repeat(" ", ind)
	for _, l := range lines {
		if l != "" {
			b.WriteString(pad)
			b.WriteString(l)
		}
		b.WriteString("\n")
	}
	return b.String(), true
}

// quoteIfNeeded returns s as a plain scalar when YAML reads that back as the
// same string, and double-quoted (JSON-style escapes) otherwise.
func quoteIfNeeded(s string) string {
	if plainSafe(s) {
		return s
	}
	return strconv.Quote(s)
}

func plainSafe(s string) bool {
	if s == "" {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ".inf", "-.inf", "+.inf", ".nan":
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '/' || c == '.' && len(s) > 1 && !isDigit(s[1])) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')' || c == '=' || c == '+' || c == '$' || c == '^' || c == '<' || c == '>':
		case c == ':' && i+1 < len(s) && s[i+1] != ' ':
		case c == ' ' && i+1 < len(s) && s[i+1] != '#' && s[i+1] != ' ' && s[i-1] != ':':
		default:
			return false
		}
	}
	// Anything a YAML 1.1 reader might take for a number, a date or a base-60 value gets quoted.
	if looksNumeric(s) {
		return false
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// looksNumeric catches what the first-character rule lets through but
// strconv or a YAML reader could still take for a number.
func looksNumeric(s string) bool {
	if s[0] == '.' {
		return true
	}
	switch strings.ToLower(s) {
	case "inf", "infinity", "nan":
		return true
	}
	return false
}
