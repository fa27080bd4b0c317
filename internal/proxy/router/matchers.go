package router

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"mesh.dev/mesh/internal/proxy/match"
)

type headerMatch struct {
	name             string
	pseudo           string // ":method", ":authority", ":scheme" or ":path": read from the request, not its header map
	present          *bool
	str              *match.String
	rangeLo, rangeHi int64
	isRange          bool
	invert           bool
	missingAsEmpty   bool
}

func compileHeaderMatch(h *routev3.HeaderMatcher, f string) (headerMatch, error) {
	hm := headerMatch{name: http.CanonicalHeaderKey(h.GetName()), invert: h.GetInvertMatch(), missingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	switch h.GetName() {
	case ":authority":
		hm.name, hm.pseudo = "Host", ":authority"
	case ":method", ":scheme", ":path":
		hm.pseudo = h.GetName()
	}
	var sm *matcherv3.StringMatcher
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		t := true
		hm.present = &t
	case *routev3.HeaderMatcher_PresentMatch:
		v := s.PresentMatch
		hm.present = &v
	case *routev3.HeaderMatcher_StringMatch:
		sm = s.StringMatch
	case *routev3.HeaderMatcher_ExactMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.ExactMatch}}
	case *routev3.HeaderMatcher_PrefixMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s.PrefixMatch}}
	case *routev3.HeaderMatcher_SuffixMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s.SuffixMatch}}
	case *routev3.HeaderMatcher_ContainsMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: s.ContainsMatch}}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: s.SafeRegexMatch}}
	case *routev3.HeaderMatcher_RangeMatch:
		hm.isRange, hm.rangeLo, hm.rangeHi = true, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	default:
		return hm, fmt.Errorf("%s: %T is not supported", f, s)
	}
	if sm != nil {
		var err error
		if hm.str, err = match.CompileString(sm, f); err != nil {
			return hm, err
		}
	}
	return hm, nil
}

// matchRequest matches the request's headers, its pseudo-headers (HTTP/2's
// :method, :authority, :scheme, :path, which Go keeps outside the header
// map) taken from the request itself, as Envoy sees them on HTTP/1.1 too.
func (m *headerMatch) matchRequest(r *http.Request) bool {
	switch m.pseudo {
	case ":method":
		return m.matchValues([]string{r.Method}, true)
	case ":authority":
		return m.matchValues([]string{r.Host}, r.Host != "")
	case ":scheme":
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return m.matchValues([]string{scheme}, true)
	case ":path":
		return m.matchValues([]string{r.URL.RequestURI()}, true)
	}
	return m.match(r.Header)
}

func (m *headerMatch) match(h http.Header) bool {
	vals, ok := h[m.name]
	return m.matchValues(vals, ok)
}

func (m *headerMatch) matchValues(vals []string, ok bool) bool {
	v := ""
	if ok && len(vals) > 0 {
		v = vals[0]
		if len(vals) > 1 {
			// Envoy joins repeated headers with commas before matching.
			for _, x := range vals[1:] {
				v += "," + x
			}
		}
	}
	var res bool
	switch {
	case m.present != nil:
		res = ok == *m.present
	case !ok && !m.missingAsEmpty:
		return false // a missing header never matches, inverted or not
	case m.isRange:
		n, err := strconv.ParseInt(v, 10, 64)
		res = err == nil && n >= m.rangeLo && n < m.rangeHi
	default:
		res = m.str.Match(v)
	}
	return res != m.invert
}

type queryMatch struct {
	name    string
	present bool
	str     *match.String
}

func compileQueryMatch(q *routev3.QueryParameterMatcher, f string) (queryMatch, error) {
	qm := queryMatch{name: q.GetName()}
	switch s := q.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_PresentMatch:
		qm.present = s.PresentMatch
	case *routev3.QueryParameterMatcher_StringMatch:
		var err error
		if qm.str, err = match.CompileString(s.StringMatch, f+".string_match"); err != nil {
			return qm, err
		}
	default:
		qm.present = true
	}
	return qm, nil
}

func (m *queryMatch) match(q url.Values) bool {
	vals, ok := q[m.name]
	if m.str == nil {
		return ok == m.present
	}
	return ok && len(vals) > 0 && m.str.Match(vals[0])
}

// HeaderMatcher is a compiled route HeaderMatcher, for filters that match headers as routes do (fault's headers).
type HeaderMatcher struct{ m headerMatch }

// CompileHeaderMatcher compiles a HeaderMatcher; errors name field f.
func CompileHeaderMatcher(h *routev3.HeaderMatcher, f string) (*HeaderMatcher, error) {
	m, err := compileHeaderMatch(h, f)
	if err != nil {
		return nil, err
	}
	return &HeaderMatcher{m: m}, nil
}

// Match reports whether the headers satisfy the matcher.
func (hm *HeaderMatcher) Match(h http.Header) bool { return hm.m.match(h) }
