package pilotinterop

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/pilot/ca"
)

// TestPathNormalizationDenyAdmin: a DENY AuthorizationPolicy on /admin
// under each meshConfig.pathNormalization, pilot's config served to
// mesh-proxy on both request paths. Every spelling of /admin that a
// setting normalizes is denied under it (403) and what the application is
// sent is the normalized path; spellings a setting leaves alone reach the
// application unchanged, as they do with Istio (NONE leaves them all, BASE
// keeps // and %2F: Istio documents both as open to CVE-2021-31920).
func TestPathNormalizationDenyAdmin(t *testing.T) {
	type want struct {
		code int
		saw  string // the request target the application got ("" for a refused request)
	}
	denied, bad := want{code: 403}, want{code: 400}
	reach := func(p string) want { return want{200, p} }
	cases := []struct {
		target                       string
		none, base, merge, decodeAll want
	}{
		{"/admin", denied, denied, denied, denied},
		{"/admin/users?x=1", denied, denied, denied, denied},
		{"/public", reach("/public"), reach("/public"), reach("/public"), reach("/public")},
		{"/a/../admin", reach("/a/../admin"), denied, denied, denied},
		{"/./admin", reach("/./admin"), denied, denied, denied},
		{"/public/%2e%2e/admin", reach("/public/%2e%2e/admin"), denied, denied, denied},
		{"/%61dmin", reach("/%61dmin"), denied, denied, denied},
		{`/public\..\admin`, reach(`/public\..\admin`), denied, denied, denied},
		{"/public/x/../../admin?q=1", reach("/public/x/../../admin?q=1"), denied, denied, denied},
		{"/public/..?q=1", reach("/public/..?q=1"), reach("/?q=1"), reach("/?q=1"), reach("/?q=1")},
		{"//admin", reach("//admin"), reach("//admin"), denied, denied},
		{"/admin//", denied, denied, denied, denied}, // "/admin/*" covers it as written
		{"///admin/x", reach("///admin/x"), reach("///admin/x"), denied, denied},
		{"/%2Fadmin", reach("/%2Fadmin"), reach("/%2Fadmin"), reach("/%2Fadmin"), denied},
		{"/public%2F..%2Fadmin", reach("/public%2F..%2Fadmin"), reach("/public%2F..%2Fadmin"), reach("/public%2F..%2Fadmin"), denied},
		{"/%5cadmin", reach("/%5cadmin"), reach("/%5cadmin"), reach("/%5cadmin"), denied},
		{"/admin%00", reach("/admin%00"), bad, bad, bad},
	}
	settings := []struct {
		name string
		n    meshapi.MeshConfig_ProxyPathNormalization_NormalizationType
		get  func(int) want
	}{
		{"NONE", meshapi.MeshConfig_ProxyPathNormalization_NONE, func(i int) want { return cases[i].none }},
		{"BASE", meshapi.MeshConfig_ProxyPathNormalization_BASE, func(i int) want { return cases[i].base }},
		{"MERGE_SLASHES", meshapi.MeshConfig_ProxyPathNormalization_MERGE_SLASHES, func(i int) want { return cases[i].merge }},
		{"DECODE_AND_MERGE_SLASHES", meshapi.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES, func(i int) want { return cases[i].decodeAll }},
	}
	app := rawPathApp(t)
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		w, _ := world(t)
		w.In.Mesh = &meshapi.MeshConfig{PathNormalization: &meshapi.MeshConfig_ProxyPathNormalization{Normalization: s.n}}
		if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]
`)); err != nil {
			t.Fatal(err)
		}
		pc := pushContext(w)
		for _, noLean := range []bool{false, true} {
			path := "lean"
			if noLean {
				path = "net/http"
			}
			t.Run(s.name+"/"+path, func(t *testing.T) {
				h := startInboundPath(t, w, pc, "reviews-v1", authority, app, noLean)
				for i, c := range cases {
					want := s.get(i)
					code, saw, err := h.rawGet(t, netip.AddrPortFrom(h.podIP, 9080), "default", "bookinfo-productpage", c.target)
					if err != nil {
						t.Errorf("GET %s: %v", c.target, err)
						continue
					}
					if want.code != 200 {
						saw = ""
					}
					if noLean && s.n == meshapi.MeshConfig_ProxyPathNormalization_NONE && strings.Contains(c.target, `\`) {
						// net/http's client sends a backslash percent-encoded
						// (docs/security.md); the lean path sends it as received.
						want.saw = strings.ReplaceAll(want.saw, `\`, "%5C")
					}
					if code != want.code || saw != want.saw {
						t.Errorf("GET %s: %d, app saw %q; want %d, %q", c.target, code, saw, want.code, want.saw)
					}
				}
			})
		}
	}
}

// rawPathApp is an application answering with the request target it was sent, as sent.
func rawPathApp(t *testing.T) netip.AddrPort {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		io.WriteString(rw, req.RequestURI)
	}))
	t.Cleanup(app.Close)
	return netip.MustParseAddrPort(app.Listener.Addr().String())
}

// rawGet sends a GET with the request target written as given (no client
// library re-encodes it) and returns the status and body.
func (h *inbound) rawGet(t *testing.T, dst netip.AddrPort, ns, sa, target string) (int, string, error) {
	t.Helper()
	conn, err := h.dial(t, dst, ns, sa)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n", target); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", fmt.Errorf("no HTTP response: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
