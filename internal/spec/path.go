package spec

import (
	"fmt"
	"strconv"
	"strings"
)

// StepKind tells how a Step moves through the tree.
type StepKind int

// The kinds of Step.
const (
	// FieldStep selects a map key or struct field.
	FieldStep StepKind = iota
	// IndexStep selects a list element by position: [0].
	IndexStep
	// SelectStep selects the list element whose Key field equals Value: [name:x].
	SelectStep
)

// Step is one element of a Path.
type Step struct {
	Kind  StepKind
	Key   string
	Index int
	Value string
}

// Path addresses a value inside a MeshOperator spec, e.g.
// components.ingressGateways[name:mesh-ingressgateway].enabled.
type Path []Step

// String renders the path in the syntax ParsePath reads.
func (p Path) String() string {
	var b strings.Builder
	for i, s := range p {
		switch s.Kind {
		case FieldStep:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(keyEscaper.Replace(s.Key))
		case IndexStep:
			fmt.Fprintf(&b, "[%d]", s.Index)
		case SelectStep:
			fmt.Fprintf(&b, "[%s:%s]", s.Key, s.Value)
		}
	}
	return b.String()
}

var keyEscaper = strings.NewReplacer(`\`, `\\`, ".", `\.`, "[", `\[`, "]", `\]`)

// ParseSet splits one --set argument "path=value" into its path and raw value.
func ParseSet(arg string) (Path, string, error) {
	depth := 0
	for i := 0; i < len(arg); i++ {
		switch arg[i] {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case '\\':
			i++
		case '=':
			if depth == 0 {
				p, err := ParsePath(arg[:i])
				return p, arg[i+1:], err
			}
		}
	}
	if depth > 0 {
		return nil, "", fmt.Errorf("%q: a '[' is not closed before the '='", arg)
	}
	return nil, "", fmt.Errorf("%q has no '=': expected path=value, e.g. profile=demo", arg)
}

// ParsePath reads a dotted path with list selectors ([0], [name:x]); a
// backslash escapes a dot inside a key (values.pilot.podAnnotations.prometheus\.io/scrape).
func ParsePath(s string) (Path, error) {
	if s == "" {
		return nil, fmt.Errorf("empty path")
	}
	var p Path
	var key strings.Builder
	keyOpen := true // a key is expected or being read
	flush := func(pos int) error {
		if !keyOpen {
			return nil
		}
		if key.Len() == 0 {
			return fmt.Errorf("path %q: empty key at offset %d", s, pos)
		}
		p = append(p, Step{Kind: FieldStep, Key: key.String()})
		key.Reset()
		keyOpen = false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("path %q ends in a lone backslash", s)
			}
			if !keyOpen {
				return nil, fmt.Errorf("path %q: expected '.' or '[' at offset %d", s, i)
			}
			i++
			key.WriteByte(s[i])
		case '.':
			if err := flush(i); err != nil {
				return nil, err
			}
			keyOpen = true
		case '[':
			if keyOpen && key.Len() == 0 && len(p) == 0 {
				return nil, fmt.Errorf("path %q starts with a list selector: expected a field name first", s)
			}
			if err := flush(i); err != nil {
				return nil, err
			}
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("path %q: '[' at offset %d is not closed", s, i)
			}
			sel := s[i+1 : i+end]
			step, err := parseSelector(sel)
			if err != nil {
				return nil, fmt.Errorf("path %q: %w", s, err)
			}
			p = append(p, step)
			i += end
		case ']':
			return nil, fmt.Errorf("path %q: unexpected ']' at offset %d", s, i)
		default:
			if !keyOpen {
				return nil, fmt.Errorf("path %q: expected '.' or '[' at offset %d", s, i)
			}
			key.WriteByte(c)
		}
	}
	if keyOpen {
		if err := flush(len(s)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func parseSelector(sel string) (Step, error) {
	if k, v, ok := strings.Cut(sel, ":"); ok {
		if k == "" || v == "" {
			return Step{}, fmt.Errorf("selector [%s]: expected [key:value], e.g. [name:mesh-ingressgateway]", sel)
		}
		return Step{Kind: SelectStep, Key: k, Value: v}, nil
	}
	n, err := strconv.Atoi(sel)
	if err != nil || n < 0 {
		return Step{}, fmt.Errorf("selector [%s]: expected a list index like [0] or a key like [name:x]", sel)
	}
	return Step{Kind: IndexStep, Index: n}, nil
}
