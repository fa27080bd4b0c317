// Package pathnorm is the request path normalization an
// HttpConnectionManager applies once, before its HTTP filters and its
// router see a request: Envoy's normalize_path (RFC 3986 with Envoy's
// extras), merge_slashes and path_with_escaped_slashes_action, which
// Istio's meshConfig.pathNormalization sets. Authorization, routing and the
// upstream all see the normalized path, so a policy on /admin cannot be
// passed by spelling it /a/../admin, //admin or /%2Fadmin (under the
// options that cover each spelling).
package pathnorm

import (
	"fmt"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Action is what the connection manager does with a request after normalization.
type Action uint8

const (
	// Forward: route the request with the (possibly changed) path.
	Forward Action = iota
	// Reject: answer 400 (a malformed path, %00, or escaped slashes under REJECT_REQUEST).
	Reject
	// Redirect: answer 307 with the unescaped path in Location (UNESCAPE_AND_REDIRECT).
	Redirect
)

// EscapedSlashes is what to do with %2F, %2f, %5C and %5c in a path.
type EscapedSlashes uint8

const (
	KeepEscapedSlashes     EscapedSlashes = iota // leave them (Envoy's default)
	RejectEscapedSlashes                         // 400
	RedirectEscapedSlashes                       // unescape, then 307 to the new path
	UnescapeSlashes                              // unescape and forward
)

// Options are an HCM's path settings; the zero value changes nothing but
// the fragment, which is never part of the path a request is matched on.
type Options struct {
	Normalize      bool // normalize_path
	MergeSlashes   bool // merge_slashes
	EscapedSlashes EscapedSlashes
}

// FromHCM reads the three HCM fields; field names the HCM for errors.
func FromHCM(h *hcmv3.HttpConnectionManager, field string) (Options, error) {
	o := Options{Normalize: h.GetNormalizePath().GetValue(), MergeSlashes: h.GetMergeSlashes()}
	switch a := h.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		o.EscapedSlashes = KeepEscapedSlashes
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		o.EscapedSlashes = RejectEscapedSlashes
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		o.EscapedSlashes = RedirectEscapedSlashes
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		o.EscapedSlashes = UnescapeSlashes
	default:
		return o, fmt.Errorf("%s.path_with_escaped_slashes_action: unknown value %d", field, a)
	}
	return o, nil
}

// Active reports whether the options change any path (beyond the fragment).
func (o Options) Active() bool {
	return o.Normalize || o.MergeSlashes || o.EscapedSlashes != KeepEscapedSlashes
}

// Apply normalizes a request path as sent (percent-encoded, without the
// query). It returns the path to route, match and forward; when nothing
// changes it returns path itself and allocates nothing. A path that does
// not start with "/" (OPTIONS *, an absolute-form target) is left alone
// but for its fragment.
func (o Options) Apply(path string) (string, Action) {
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i] // Envoy strips the fragment: it never reaches the server
	}
	if path == "" || path[0] != '/' || !o.Active() {
		return path, Forward
	}
	act := Forward
	if o.EscapedSlashes != KeepEscapedSlashes && hasEscapedSlash(path) {
		switch o.EscapedSlashes {
		case RejectEscapedSlashes:
			return path, Reject
		case RedirectEscapedSlashes:
			act = Redirect
		}
		path = unescapeSlashes(path)
	}
	if o.Normalize {
		var ok bool
		if path, ok = normalize(path); !ok {
			return path, Reject
		}
	}
	if o.MergeSlashes {
		path = mergeSlashes(path)
	}
	return path, act
}

func hasEscapedSlash(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && isSlashEscape(p[i+1], p[i+2]) {
			return true
		}
	}
	return false
}

func isSlashEscape(a, b byte) bool {
	return a == '2' && (b == 'f' || b == 'F') || a == '5' && (b == 'c' || b == 'C')
}

// unescapeSlashes turns %2F into / and %5C into \ (any case), once.
func unescapeSlashes(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isSlashEscape(p[i+1], p[i+2]) {
			if p[i+1] == '2' {
				b.WriteByte('/')
			} else {
				b.WriteByte('\\')
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// normalize is Envoy's normalize_path: percent-encoded unreserved
// characters (ALPHA, DIGIT, - . _ ~) are decoded, once; other escapes stay
// as written (their case too); a backslash is a slash; dot segments are
// removed as RFC 3986 section 5.2.4 says. A malformed escape or %00 fails
// (the request is answered 400), as does a path with a NUL.
func normalize(p string) (string, bool) {
	if !needsNormalize(p) {
		return p, true
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case 0:
			return p, false
		case '\\':
			b = append(b, '/')
		case '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return p, false
			}
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			switch {
			case d == 0:
				return p, false
			case isUnreserved(d):
				b = append(b, d)
			default:
				b = append(b, p[i:i+3]...)
			}
			i += 2
		default:
			b = append(b, c)
		}
	}
	return removeDotSegments(string(b)), true
}

// needsNormalize reports whether normalize could change p or refuse it.
func needsNormalize(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%', '\\', 0:
			return true
		case '.':
			if p[i-1] == '/' { // p[0] is '/'
				return true
			}
		}
	}
	return false
}

// removeDotSegments drops "." segments and lets ".." remove the segment
// before it (never above the root); p starts with "/". Empty segments are
// segments: /a//../b is /a/b.
func removeDotSegments(p string) string {
	if !strings.Contains(p, "/.") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := segs[:0]
	trailing := false
	for _, s := range segs {
		trailing = false
		switch s {
		case ".":
			trailing = true
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = true
		default:
			out = append(out, s)
		}
	}
	r := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		r += "/"
	}
	return r
}

// mergeSlashes turns every run of slashes into one.
func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && len(b) > 0 && b[len(b)-1] == '/' {
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isUnreserved is RFC 3986's unreserved set.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
