package analyze

import (
	"fmt"
	"path"
	"strings"
)

// Annotations that suppress messages on the resource carrying them; the
// value is a comma-separated list of codes, or "*" for all.
const (
	SuppressAnnotation      = "mesh.io/analyze-suppress"
	IstioSuppressAnnotation = "galley.istio.io/analyze-suppress"
)

// Suppression silences one code (or a glob of codes) for resources whose
// reference ("Kind name.namespace") matches a glob.
type Suppression struct {
	Code     string
	Resource string
}

// ParseSuppression reads "CODE=Kind name.namespace" as given to -S.
func ParseSuppression(s string) (Suppression, error) {
	code, res, ok := strings.Cut(s, "=")
	code, res = strings.TrimSpace(code), strings.TrimSpace(res)
	if !ok || code == "" || res == "" {
		return Suppression{}, fmt.Errorf("invalid suppression %q: expected CODE=Kind name.namespace, e.g. IST0102=Namespace default", s)
	}
	if _, err := path.Match(code, ""); err != nil {
		return Suppression{}, fmt.Errorf("invalid suppression %q: bad code pattern: %v", s, err)
	}
	if _, err := path.Match(res, ""); err != nil {
		return Suppression{}, fmt.Errorf("invalid suppression %q: bad resource pattern: %v", s, err)
	}
	kind, _, _ := strings.Cut(res, " ")
	if kind == "" || !strings.Contains(res, " ") {
		return Suppression{}, fmt.Errorf("invalid suppression %q: the resource must be \"Kind name.namespace\" (or \"Kind name\" for cluster-scoped kinds)", s)
	}
	return Suppression{Code: code, Resource: res}, nil
}

func (s Suppression) matches(m Message) bool {
	okCode, _ := path.Match(s.Code, m.Type.Code)
	okRes, _ := path.Match(s.Resource, m.Resource.Ref())
	return okCode && okRes
}

// Filter decides which messages are kept.
type Filter struct {
	Suppressions []Suppression
	// Namespaces limits messages to resources in these namespaces; nil
	// keeps every namespace.
	Namespaces map[string]bool
}

// Apply drops suppressed messages and those outside the namespaces.
func (f Filter) Apply(msgs []Message) []Message {
	var out []Message
	for _, m := range msgs {
		if m.Type == InternalError {
			out = append(out, m) // about mesh itself: never filtered away
			continue
		}
		if f.Namespaces != nil && !f.Namespaces[m.Resource.ScopeNamespace()] {
			continue
		}
		if suppressedByAnnotation(m) {
			continue
		}
		skip := false
		for _, s := range f.Suppressions {
			if s.matches(m) {
				skip = true
				break
			}
		}
		if !skip {
			out = append(out, m)
		}
	}
	return out
}

func suppressedByAnnotation(m Message) bool {
	for _, a := range []string{SuppressAnnotation, IstioSuppressAnnotation} {
		v, ok := m.Resource.Annotations()[a]
		if !ok {
			continue
		}
		for _, c := range strings.Split(v, ",") {
			c = strings.TrimSpace(c)
			if c == "*" || c == m.Type.Code {
				return true
			}
		}
	}
	return false
}

// AtLeast returns the messages at level l or above.
func AtLeast(msgs []Message, l Level) []Message {
	var out []Message
	for _, m := range msgs {
		if m.Type.Level >= l {
			out = append(out, m)
		}
	}
	return out
}
