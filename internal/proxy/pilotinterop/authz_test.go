package pilotinterop

import (
	"net/netip"
	"testing"
)

// TestAuthorizationPolicyServiceAccounts is the demo's case: an ALLOW
// policy on reviews naming productpage's service account. Before,
// serviceAccounts was neither translated nor refused, so the rule allowed
// every caller and ratings got 200. Pilot's config for reviews' sidecar,
// served to mesh-proxy, must admit productpage only, in both forms of the
// field and as a `when` key.
func TestAuthorizationPolicyServiceAccounts(t *testing.T) {
	for name, rule := range map[string]string{
		"ns/sa":                      `from: [{source: {serviceAccounts: ["default/bookinfo-productpage"]}}]`,
		"bare sa":                    `from: [{source: {serviceAccounts: ["bookinfo-productpage"]}}]`,
		"when source.serviceAccount": `when: [{key: source.serviceAccount, values: ["default/bookinfo-productpage"]}]`,
	} {
		t.Run(name, func(t *testing.T) {
			offService := newApp(t)
			w, _ := world(t)
			if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-from-productpage, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules: [{` + rule + `}]
`)); err != nil {
				t.Fatal(err)
			}
			h := startInbound(t, w, pushContext(w), "reviews-v1")
			if code, err := h.call(t, 9080, "default", "bookinfo-productpage", "/reviews/0"); err != nil || code != 200 {
				t.Errorf("productpage → reviews: %d %v; want 200", code, err)
			}
			if code, err := h.call(t, 9080, "default", "bookinfo-ratings", "/reviews/0"); err != nil || code != 403 {
				t.Errorf("ratings → reviews: %d %v; want 403 (the policy names productpage only)", code, err)
			}
			if code, err := h.call(t, 9080, "", "", "/reviews/0"); err == nil && code != 403 {
				t.Errorf("plaintext → reviews: %d; want refused", code)
			}
			// A port no Service names goes through the passthrough chain,
			// where the policy holds too (network RBAC, before the bytes
			// reach the app).
			if code, err := h.callTo(t, offService, "default", "bookinfo-productpage", "/"); err != nil || code != 200 {
				t.Errorf("productpage → reviews' port %d (no Service): %d %v; want 200", offService.Port(), code, err)
			}
			if code, err := h.callTo(t, offService, "default", "bookinfo-ratings", "/"); err == nil {
				t.Errorf("ratings → reviews' port %d (no Service): %d; want the connection refused", offService.Port(), code)
			}
		})
	}
}

// TestRequestAuthenticationFailsClosed: mesh-proxy cannot verify JWTs yet,
// so where a RequestAuthentication applies a request carrying a token (in
// the rule's locations, or Istio's default ones) is refused rather than let
// through unverified; a request without one passes, as with Istio.
func TestRequestAuthenticationFailsClosed(t *testing.T) {
	w, _ := world(t)
	if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: https://issuer.example
  - issuer: https://other.example
    fromHeaders: [{name: x-jwt}]
    fromCookies: [session]
`)); err != nil {
		t.Fatal(err)
	}
	h := startInbound(t, w, pushContext(w), "reviews-v1")
	svc := netip.AddrPortFrom(h.podIP, 9080)
	for _, c := range []struct {
		name string
		path string
		hdr  []string
		want int
	}{
		{"no token", "/reviews/0", nil, 200},
		{"Authorization: Bearer", "/reviews/0", []string{"Authorization", "Bearer forged.jwt.value"}, 403},
		{"access_token parameter", "/reviews/0?x=1&access_token=forged", nil, 403},
		{"fromHeaders", "/reviews/0", []string{"X-Jwt", "forged"}, 403},
		{"fromCookies", "/reviews/0", []string{"Cookie", "a=b; session=forged"}, 403},
		{"basic auth is no token", "/reviews/0", []string{"Authorization", "Basic dTpw"}, 200},
	} {
		code, err := h.callTo(t, svc, "default", "bookinfo-productpage", c.path, c.hdr...)
		if err != nil || code != c.want {
			t.Errorf("%s: %d %v; want %d", c.name, code, err, c.want)
		}
	}
}
