// Package celexpr evaluates a small, documented subset of CEL (the Common
// Expression Language), enough for Istio's Telemetry accessLogging
// filter.expression and Envoy's CEL access log filter: attribute selection
// (request.headers['x'], response.code, connection.mtls, ...), literals
// (int, double, string, bool, null, lists), the operators ! - * / % + - < <=
// > >= == != in && || and ?:, and the functions size, has, int, string,
// startsWith, endsWith, contains and matches. Evaluation errors (a missing
// attribute or key, a type mismatch) make the whole expression an error,
// which callers treat as false, as Envoy does. Anything outside the subset
// is refused when the expression is parsed, naming what is not supported.
package celexpr

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Object is an attribute value with named fields (request, response, ...).
type Object interface {
	Field(name string) (any, bool)
}

// Indexer is an attribute value indexed by string keys (request.headers).
type Indexer interface {
	Index(key string) (any, bool)
}

// Expr is a parsed expression.
type Expr struct {
	src  string
	root node
}

// String returns the expression's source.
func (e *Expr) String() string { return e.src }

// Parse parses an expression of the subset.
func Parse(src string) (*Expr, error) {
	p := &parser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	n, err := p.ternary()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, p.errf(p.toks[p.pos], "unexpected %q", p.toks[p.pos].text)
	}
	return &Expr{src: src, root: n}, nil
}

// Eval evaluates the expression with the given top-level variables.
func (e *Expr) Eval(vars Object) (any, error) { return e.root.eval(vars) }

// Matches evaluates the expression as a condition: true only when it evaluates to true without error.
func (e *Expr) Matches(vars Object) bool {
	v, err := e.root.eval(vars)
	b, ok := v.(bool)
	return err == nil && ok && b
}

// Lexer.

type tokKind uint8

const (
	tIdent tokKind = iota
	tInt
	tUint
	tFloat
	tString
	tOp
)

type token struct {
	kind tokKind
	text string
	pos  int
	i    int64
	u    uint64
	f    float64
}

type parser struct {
	src  string
	toks []token
	pos  int
}

func (p *parser) errf(t token, format string, a ...any) error {
	return fmt.Errorf("expression %q: position %d: %s", p.src, t.pos, fmt.Sprintf(format, a...))
}

var twoCharOps = []string{"&&", "||", "==", "!=", "<=", ">="}

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			p.toks = append(p.toks, token{kind: tIdent, text: s[i:j], pos: i})
			i = j
		case c >= '0' && c <= '9':
			j := i
			isFloat := false
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' || s[j] == 'x' || s[j] >= 'a' && s[j] <= 'f' && strings.HasPrefix(s[i:], "0x")) {
				if s[j] == '.' || (s[j] == 'e' || s[j] == 'E') && !strings.HasPrefix(s[i:], "0x") {
					isFloat = true
				}
				j++
			}
			lit := s[i:j]
			t := token{text: lit, pos: i}
			if isFloat {
				f, err := strconv.ParseFloat(lit, 64)
				if err != nil {
					return fmt.Errorf("expression %q: position %d: bad number %q", s, i, lit)
				}
				t.kind, t.f = tFloat, f
			} else if j < len(s) && (s[j] == 'u' || s[j] == 'U') {
				u, err := strconv.ParseUint(lit, 0, 64)
				if err != nil {
					return fmt.Errorf("expression %q: position %d: bad number %q", s, i, lit)
				}
				t.kind, t.u = tUint, u
				j++
			} else {
				n, err := strconv.ParseInt(lit, 0, 64)
				if err != nil {
					return fmt.Errorf("expression %q: position %d: bad number %q", s, i, lit)
				}
				t.kind, t.i = tInt, n
			}
			p.toks = append(p.toks, t)
			i = j
		case c == '"' || c == '\'':
			j := i + 1
			var b strings.Builder
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					switch s[j] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case '\\', '"', '\'':
						b.WriteByte(s[j])
					default:
						return fmt.Errorf("expression %q: position %d: escape \\%c is not supported", s, j-1, s[j])
					}
					continue
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return fmt.Errorf("expression %q: position %d: unterminated string", s, i)
			}
			p.toks = append(p.toks, token{kind: tString, text: b.String(), pos: i})
			i = j + 1
		default:
			op := ""
			for _, o := range twoCharOps {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" && strings.IndexByte("!<>+-*/%()[].,?:", c) >= 0 {
				op = string(c)
			}
			if op == "" {
				return fmt.Errorf("expression %q: position %d: character %q is not part of the supported CEL subset", s, i, c)
			}
			p.toks = append(p.toks, token{kind: tOp, text: op, pos: i})
			i += len(op)
		}
	}
	return nil
}

func (p *parser) peek(op string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == tOp && p.toks[p.pos].text == op
}

func (p *parser) peekIdent(name string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == tIdent && p.toks[p.pos].text == name
}

func (p *parser) expect(op string) error {
	if !p.peek(op) {
		if p.pos < len(p.toks) {
			return p.errf(p.toks[p.pos], "expected %q, found %q", op, p.toks[p.pos].text)
		}
		return fmt.Errorf("expression %q: expected %q at the end", p.src, op)
	}
	p.pos++
	return nil
}

func (p *parser) ternary() (node, error) {
	c, err := p.or()
	if err != nil {
		return nil, err
	}
	if !p.peek("?") {
		return c, nil
	}
	p.pos++
	a, err := p.ternary()
	if err != nil {
		return nil, err
	}
	if err := p.expect(":"); err != nil {
		return nil, err
	}
	b, err := p.ternary()
	if err != nil {
		return nil, err
	}
	return &condNode{c, a, b}, nil
}

func (p *parser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek("||") {
		p.pos++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &logicNode{or: true, l: l, r: r}
	}
	return l, nil
}

func (p *parser) and() (node, error) {
	l, err := p.rel()
	if err != nil {
		return nil, err
	}
	for p.peek("&&") {
		p.pos++
		r, err := p.rel()
		if err != nil {
			return nil, err
		}
		l = &logicNode{l: l, r: r}
	}
	return l, nil
}

func (p *parser) rel() (node, error) {
	l, err := p.add()
	if err != nil {
		return nil, err
	}
	for {
		var op string
		switch {
		case p.peekIdent("in"):
			op = "in"
		case p.pos < len(p.toks) && p.toks[p.pos].kind == tOp:
			switch t := p.toks[p.pos].text; t {
			case "==", "!=", "<", "<=", ">", ">=":
				op = t
			}
		}
		if op == "" {
			return l, nil
		}
		p.pos++
		r, err := p.add()
		if err != nil {
			return nil, err
		}
		l = &binNode{op: op, l: l, r: r}
	}
}

func (p *parser) add() (node, error) {
	l, err := p.mul()
	if err != nil {
		return nil, err
	}
	for p.peek("+") || p.peek("-") {
		op := p.toks[p.pos].text
		p.pos++
		r, err := p.mul()
		if err != nil {
			return nil, err
		}
		l = &binNode{op: op, l: l, r: r}
	}
	return l, nil
}

func (p *parser) mul() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.peek("*") || p.peek("/") || p.peek("%") {
		op := p.toks[p.pos].text
		p.pos++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &binNode{op: op, l: l, r: r}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	if p.peek("!") || p.peek("-") {
		op := p.toks[p.pos].text
		p.pos++
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &unaryNode{op: op, x: x}, nil
	}
	return p.member()
}

func (p *parser) member() (node, error) {
	n, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.peek("."):
			p.pos++
			if p.pos >= len(p.toks) || p.toks[p.pos].kind != tIdent {
				return nil, fmt.Errorf("expression %q: a field name must follow '.'", p.src)
			}
			name := p.toks[p.pos]
			p.pos++
			if p.peek("(") {
				args, err := p.args()
				if err != nil {
					return nil, err
				}
				m, err := p.method(name, n, args)
				if err != nil {
					return nil, err
				}
				n = m
				continue
			}
			n = &selectNode{x: n, field: name.text}
		case p.peek("["):
			p.pos++
			k, err := p.ternary()
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			n = &indexNode{x: n, key: k}
		default:
			return n, nil
		}
	}
}

func (p *parser) args() ([]node, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var out []node
	for !p.peek(")") {
		a, err := p.ternary()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		if !p.peek(",") {
			break
		}
		p.pos++
	}
	return out, p.expect(")")
}

func (p *parser) method(name token, recv node, args []node) (node, error) {
	switch name.text {
	case "startsWith", "endsWith", "contains":
		if len(args) != 1 {
			return nil, p.errf(name, "%s takes one argument", name.text)
		}
		return &strMethod{name: name.text, recv: recv, arg: args[0]}, nil
	case "matches":
		if len(args) != 1 {
			return nil, p.errf(name, "matches takes one argument")
		}
		m := &matchNode{recv: recv, arg: args[0]}
		if lit, ok := args[0].(*litNode); ok {
			s, ok := lit.v.(string)
			if !ok {
				return nil, p.errf(name, "matches takes a string")
			}
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, p.errf(name, "matches: %v", err)
			}
			m.re = re
		}
		return m, nil
	case "size":
		if len(args) != 0 {
			return nil, p.errf(name, "x.size() takes no argument")
		}
		return &sizeNode{x: recv}, nil
	}
	return nil, p.errf(name, "method %s is not in the supported CEL subset (startsWith, endsWith, contains, matches, size)", name.text)
}

func (p *parser) primary() (node, error) {
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("expression %q: unexpected end", p.src)
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case tInt:
		return &litNode{t.i}, nil
	case tUint:
		return &litNode{t.u}, nil
	case tFloat:
		return &litNode{t.f}, nil
	case tString:
		return &litNode{t.text}, nil
	case tIdent:
		switch t.text {
		case "true":
			return &litNode{true}, nil
		case "false":
			return &litNode{false}, nil
		case "null":
			return &litNode{nil}, nil
		}
		if p.peek("(") {
			args, err := p.args()
			if err != nil {
				return nil, err
			}
			switch t.text {
			case "size":
				if len(args) == 1 {
					return &sizeNode{x: args[0]}, nil
				}
			case "int", "string", "double", "uint":
				if len(args) == 1 {
					return &convNode{to: t.text, x: args[0]}, nil
				}
			case "has":
				if len(args) == 1 {
					switch a := args[0].(type) {
					case *selectNode:
						return &hasNode{x: a.x, key: &litNode{a.field}}, nil
					case *indexNode:
						return &hasNode{x: a.x, key: a.key}, nil
					}
				}
				return nil, p.errf(t, "has() takes a field selection, e.g. has(request.headers.x)")
			default:
				return nil, p.errf(t, "function %s is not in the supported CEL subset (size, has, int, uint, double, string)", t.text)
			}
			return nil, p.errf(t, "%s takes one argument", t.text)
		}
		return &identNode{name: t.text}, nil
	case tOp:
		switch t.text {
		case "(":
			n, err := p.ternary()
			if err != nil {
				return nil, err
			}
			return n, p.expect(")")
		case "[":
			var items []node
			for !p.peek("]") {
				it, err := p.ternary()
				if err != nil {
					return nil, err
				}
				items = append(items, it)
				if !p.peek(",") {
					break
				}
				p.pos++
			}
			return &listNode{items}, p.expect("]")
		}
	}
	return nil, p.errf(t, "unexpected %q", t.text)
}
