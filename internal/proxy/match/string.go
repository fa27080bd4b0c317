// Package match compiles Envoy's string matchers into fast predicates.
package match

import (
	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// String is a compiled envoy.type.matcher.v3.StringMatcher.
type String struct {
	kind       int
	value      string
	re         *regexp.Regexp
	ignoreCase bool
}

const (
	kindExact = iota
	kindPrefix
	kindSuffix
	kindContains
	kindRegex
)

// CompileString compiles m; field names the field in errors.
func CompileString(m *matcherv3.StringMatcher, field string) (*String, error) {
	if m == nil {
		return nil, fmt.Errorf("%s: string matcher is empty", field)
	}
	s := &String{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = kindExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = kindPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = kindSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = kindContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := CompileRegex(p.SafeRegex, field+".safe_regex")
		if err != nil {
			return nil, err
		}
		s.kind, s.re = kindRegex, re
	default:
		return nil, fmt.Errorf("%s: unsupported match_pattern %T", field, p)
	}
	if s.ignoreCase {
		s.value = strings.ToLower(s.value)
	}
	return s, nil
}

// CompileRegex compiles a RegexMatcher whose whole input must match, as in Envoy.
func CompileRegex(m *matcherv3.RegexMatcher, field string) (*regexp.Regexp, error) {
	if m == nil {
		return nil, fmt.Errorf("%s: regex is empty", field)
	}
	re, err := regexp.Compile("^(?:" + m.GetRegex() + ")$")
	if err != nil {
		return nil, fmt.Errorf("%s: regex %q: %w", field, m.GetRegex(), err)
	}
	return re, nil
}

// Match reports whether v satisfies the matcher.
func (s *String) Match(v string) bool {
	if s.kind == kindRegex {
		return s.re.MatchString(v)
	}
	if s.ignoreCase {
		v = strings.ToLower(v)
	}
	switch s.kind {
	case kindExact:
		return v == s.value
	case kindPrefix:
		return strings.HasPrefix(v, s.value)
	case kindSuffix:
		return strings.HasSuffix(v, s.value)
	default:
		return strings.Contains(v, s.value)
	}
}
