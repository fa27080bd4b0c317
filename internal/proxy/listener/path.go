package listener

import (
	"net/http"
	"net/url"
	"strings"

	"mesh.dev/mesh/internal/proxy/pathnorm"
)

// The HCM's path settings (normalize_path, merge_slashes,
// path_with_escaped_slashes_action) are applied here, once per request and
// before the route lookup and the HTTP filters, on both request paths: the
// path RBAC matches is the one the router matches and the upstream gets.

// normalizePath rewrites r's path as the HCM's settings say; false when it
// answered the request itself (400 for a path it refuses, 307 to the
// unescaped path under UNESCAPE_AND_REDIRECT).
func (m *HCM) normalizePath(w http.ResponseWriter, r *http.Request) bool {
	raw, query := r.RequestURI, ""
	if raw == "" || raw[0] != '/' {
		raw = r.URL.EscapedPath() // absolute-form or * targets: what net/http parsed
		query = r.URL.RawQuery
	} else if p, q, ok := strings.Cut(raw, "?"); ok {
		raw, query = p, q
	}
	if !m.path.Active() && strings.IndexByte(raw, '#') < 0 {
		return true
	}
	np, act := m.path.Apply(raw)
	switch act {
	case pathnorm.Reject:
		m.Stats.FailedPathNormalization.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("Bad Request"))
		return false
	case pathnorm.Redirect:
		m.Stats.RedirectedNormalizedPath.Add(1)
		loc := np
		if query != "" {
			loc += "?" + query
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return false
	}
	if np == raw {
		return true
	}
	if !setPath(r.URL, np) {
		m.Stats.FailedPathNormalization.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return false
	}
	r.URL.Fragment, r.URL.RawFragment = "", "" // Envoy strips the fragment
	r.RequestURI = np
	if query != "" {
		r.RequestURI += "?" + query
	}
	return true
}

// leanNormalizePath is normalizePath on the lean path: it updates the
// parsed request and the target sent upstream; a request the settings
// answer (400, 307) is handed to net/http, which answers it.
func (m *HCM) leanNormalizePath(lc *leanConn) error {
	if !m.path.Active() {
		return nil // parseHead hands targets with a fragment off
	}
	raw, query, hasQuery := strings.Cut(lc.target, "?")
	np, act := m.path.Apply(raw)
	if act != pathnorm.Forward {
		return errHandOff
	}
	if np == raw {
		return nil
	}
	if !setPath(&lc.url, np) {
		return errHandOff
	}
	lc.target = np
	if hasQuery {
		lc.target += "?" + query
	}
	lc.rawTarget = lc.target
	return nil
}

// setPath makes u's path the normalized raw path p (decoded into Path, as
// net/http parses it); false when p is not validly escaped.
func setPath(u *url.URL, p string) bool {
	dec, err := url.PathUnescape(p)
	if err != nil {
		return false
	}
	u.Path, u.RawPath = dec, ""
	if u.EscapedPath() != p {
		u.RawPath = p
	}
	return true
}
