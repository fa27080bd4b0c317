package celexpr

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

type node interface {
	eval(vars Object) (any, error)
}

var errNoSuch = errors.New("no such attribute")

type litNode struct{ v any }

func (n *litNode) eval(Object) (any, error) { return n.v, nil }

type identNode struct{ name string }

func (n *identNode) eval(vars Object) (any, error) {
	if vars != nil {
		if v, ok := vars.Field(n.name); ok {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", errNoSuch, n.name)
}

type selectNode struct {
	x     node
	field string
}

func (n *selectNode) eval(vars Object) (any, error) {
	x, err := n.x.eval(vars)
	if err != nil {
		return nil, err
	}
	return lookup(x, n.field)
}

func lookup(x any, key string) (any, error) {
	switch o := x.(type) {
	case Object:
		if v, ok := o.Field(key); ok {
			return v, nil
		}
	case Indexer:
		if v, ok := o.Index(key); ok {
			return v, nil
		}
	case map[string]any:
		if v, ok := o[key]; ok {
			return v, nil
		}
	case map[string]string:
		if v, ok := o[key]; ok {
			return v, nil
		}
	default:
		return nil, fmt.Errorf("cannot select %q from %T", key, x)
	}
	return nil, fmt.Errorf("%w: %s", errNoSuch, key)
}

type indexNode struct{ x, key node }

func (n *indexNode) eval(vars Object) (any, error) {
	x, err := n.x.eval(vars)
	if err != nil {
		return nil, err
	}
	k, err := n.key.eval(vars)
	if err != nil {
		return nil, err
	}
	if l, ok := x.([]any); ok {
		i, ok := k.(int64)
		if !ok || i < 0 || i >= int64(len(l)) {
			return nil, fmt.Errorf("index %v out of range", k)
		}
		return l[i], nil
	}
	ks, ok := k.(string)
	if !ok {
		return nil, fmt.Errorf("map key %v is not a string", k)
	}
	return lookup(x, ks)
}

type hasNode struct{ x, key node }

func (n *hasNode) eval(vars Object) (any, error) {
	x, err := n.x.eval(vars)
	if err != nil {
		return nil, err
	}
	k, err := n.key.eval(vars)
	if err != nil {
		return nil, err
	}
	ks, _ := k.(string)
	_, err = lookup(x, ks)
	if errors.Is(err, errNoSuch) {
		return false, nil
	}
	return err == nil, err
}

type listNode struct{ items []node }

func (n *listNode) eval(vars Object) (any, error) {
	out := make([]any, len(n.items))
	for i, it := range n.items {
		v, err := it.eval(vars)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

type condNode struct{ c, a, b node }

func (n *condNode) eval(vars Object) (any, error) {
	c, err := n.c.eval(vars)
	if err != nil {
		return nil, err
	}
	b, ok := c.(bool)
	if !ok {
		return nil, fmt.Errorf("condition is %T, not bool", c)
	}
	if b {
		return n.a.eval(vars)
	}
	return n.b.eval(vars)
}

// logicNode is && or ||, with CEL's commutative error handling: an error on
// one side is absorbed when the other side decides the result.
type logicNode struct {
	or   bool
	l, r node
}

func (n *logicNode) eval(vars Object) (any, error) {
	lv, lerr := n.l.eval(vars)
	lb, lok := lv.(bool)
	if lerr == nil && lok && lb == n.or {
		return n.or, nil
	}
	rv, rerr := n.r.eval(vars)
	rb, rok := rv.(bool)
	if rerr == nil && rok && rb == n.or {
		return n.or, nil
	}
	if lerr != nil {
		return nil, lerr
	}
	if rerr != nil {
		return nil, rerr
	}
	if !lok || !rok {
		return nil, fmt.Errorf("logical operator on %T and %T", lv, rv)
	}
	return !n.or, nil
}

type unaryNode struct {
	op string
	x  node
}

func (n *unaryNode) eval(vars Object) (any, error) {
	v, err := n.x.eval(vars)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "!":
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("! on %T", v)
		}
		return !b, nil
	default:
		switch x := v.(type) {
		case int64:
			return -x, nil
		case float64:
			return -x, nil
		}
		return nil, fmt.Errorf("- on %T", v)
	}
}

type binNode struct {
	op   string
	l, r node
}

func (n *binNode) eval(vars Object) (any, error) {
	l, err := n.l.eval(vars)
	if err != nil {
		return nil, err
	}
	r, err := n.r.eval(vars)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "in":
		switch c := r.(type) {
		case []any:
			for _, it := range c {
				if equal(l, it) {
					return true, nil
				}
			}
			return false, nil
		case map[string]any, map[string]string, Indexer, Object:
			k, ok := l.(string)
			if !ok {
				return nil, fmt.Errorf("in: key %T is not a string", l)
			}
			_, err := lookup(c, k)
			if errors.Is(err, errNoSuch) {
				return false, nil
			}
			return err == nil, err
		}
		return nil, fmt.Errorf("in: %T is not a list or map", r)
	case "<", "<=", ">", ">=":
		c, err := compare(l, r)
		if err != nil {
			return nil, err
		}
		switch n.op {
		case "<":
			return c < 0, nil
		case "<=":
			return c <= 0, nil
		case ">":
			return c > 0, nil
		}
		return c >= 0, nil
	case "+":
		if ls, ok := l.(string); ok {
			if rs, ok := r.(string); ok {
				return ls + rs, nil
			}
		}
	}
	return arith(n.op, l, r)
}

func arith(op string, l, r any) (any, error) {
	li, lok := l.(int64)
	ri, rok := r.(int64)
	if lok && rok {
		switch op {
		case "+":
			return li + ri, nil
		case "-":
			return li - ri, nil
		case "*":
			return li * ri, nil
		case "/", "%":
			if ri == 0 {
				return nil, errors.New("division by zero")
			}
			if op == "/" {
				return li / ri, nil
			}
			return li % ri, nil
		}
	}
	lf, lok := toFloat(l)
	rf, rok := toFloat(r)
	if lok && rok {
		switch op {
		case "+":
			return lf + rf, nil
		case "-":
			return lf - rf, nil
		case "*":
			return lf * rf, nil
		case "/":
			return lf / rf, nil
		}
	}
	return nil, fmt.Errorf("%s on %T and %T", op, l, r)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func equal(l, r any) bool {
	if lf, ok := toFloat(l); ok {
		rf, ok := toFloat(r)
		return ok && lf == rf
	}
	switch x := l.(type) {
	case []any:
		y, ok := r.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case string, bool, nil:
		return l == r
	}
	return false
}

func compare(l, r any) (int, error) {
	if lf, ok := toFloat(l); ok {
		if rf, ok := toFloat(r); ok {
			switch {
			case lf < rf:
				return -1, nil
			case lf > rf:
				return 1, nil
			case math.IsNaN(lf) || math.IsNaN(rf):
				return 0, errors.New("NaN compared")
			}
			return 0, nil
		}
	}
	if ls, ok := l.(string); ok {
		if rs, ok := r.(string); ok {
			return strings.Compare(ls, rs), nil
		}
	}
	return 0, fmt.Errorf("cannot order %T and %T", l, r)
}

type strMethod struct {
	name      string
	recv, arg node
}

func (n *strMethod) eval(vars Object) (any, error) {
	s, a, err := twoStrings(vars, n.recv, n.arg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	switch n.name {
	case "startsWith":
		return strings.HasPrefix(s, a), nil
	case "endsWith":
		return strings.HasSuffix(s, a), nil
	}
	return strings.Contains(s, a), nil
}

func twoStrings(vars Object, x, y node) (string, string, error) {
	xv, err := x.eval(vars)
	if err != nil {
		return "", "", err
	}
	yv, err := y.eval(vars)
	if err != nil {
		return "", "", err
	}
	xs, ok1 := xv.(string)
	ys, ok2 := yv.(string)
	if !ok1 || !ok2 {
		return "", "", fmt.Errorf("want strings, have %T and %T", xv, yv)
	}
	return xs, ys, nil
}

type matchNode struct {
	recv, arg node
	re        *regexp.Regexp
}

func (n *matchNode) eval(vars Object) (any, error) {
	if n.re != nil {
		v, err := n.recv.eval(vars)
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("matches on %T", v)
		}
		return n.re.MatchString(s), nil
	}
	s, pat, err := twoStrings(vars, n.recv, n.arg)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, err
	}
	return re.MatchString(s), nil
}

type sizeNode struct{ x node }

func (n *sizeNode) eval(vars Object) (any, error) {
	v, err := n.x.eval(vars)
	if err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case string:
		return int64(len([]rune(x))), nil
	case []any:
		return int64(len(x)), nil
	case map[string]any:
		return int64(len(x)), nil
	case map[string]string:
		return int64(len(x)), nil
	}
	return nil, fmt.Errorf("size of %T", v)
}

type convNode struct {
	to string
	x  node
}

func (n *convNode) eval(vars Object) (any, error) {
	v, err := n.x.eval(vars)
	if err != nil {
		return nil, err
	}
	switch n.to {
	case "string":
		switch x := v.(type) {
		case string:
			return x, nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case uint64:
			return strconv.FormatUint(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		case bool:
			return strconv.FormatBool(x), nil
		}
	case "int":
		switch x := v.(type) {
		case int64:
			return x, nil
		case uint64:
			return int64(x), nil
		case float64:
			return int64(x), nil
		case string:
			return strconv.ParseInt(x, 10, 64)
		}
	case "uint":
		switch x := v.(type) {
		case int64:
			if x < 0 {
				return nil, errors.New("uint of a negative number")
			}
			return uint64(x), nil
		case uint64:
			return x, nil
		case string:
			return strconv.ParseUint(x, 10, 64)
		}
	case "double":
		if f, ok := toFloat(v); ok {
			return f, nil
		}
		if s, ok := v.(string); ok {
			return strconv.ParseFloat(s, 64)
		}
	}
	return nil, fmt.Errorf("%s(%T) is not supported", n.to, v)
}
