package pilotinterop

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
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

// TestRequestAuthenticationJWT: pilot's jwt_authn filter for a
// RequestAuthentication (inline jwks, and a jwksUri pilot fetches), served
// to mesh-proxy: a valid token passes, an expired, forged, wrong-audience or
// unknown-issuer one gets 401, none passes; an AuthorizationPolicy on
// requestPrincipals and a claim admits only the token it names.
func TestRequestAuthenticationJWT(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forgedKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Use: "sig"}}})
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(set) }))
	defer jwksServer.Close()
	sign := func(k *rsa.PrivateKey, claims map[string]any) string {
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := josejwt.Signed(sg).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exp := time.Now().Add(time.Hour).Unix()
	claims := func(iss, sub, aud string, exp int64) map[string]any {
		return map[string]any{"iss": iss, "sub": sub, "aud": aud, "exp": exp, "groups": []string{"reviewers"}}
	}
	w, _ := world(t)
	if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: https://inline.example
    audiences: [reviews]
    jwks: '` + string(set) + `'
  - issuer: https://fetched.example
    jwksUri: ` + jwksServer.URL + `/keys
`)); err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	check := func(h *inbound, name string, hdr []string, want int) {
		t.Helper()
		code, err := h.callTo(t, netip.AddrPortFrom(h.podIP, 9080), "default", "bookinfo-productpage", "/reviews/0", hdr...)
		if err != nil || code != want {
			t.Errorf("%s: %d %v; want %d", name, code, err, want)
		}
	}
	h := startInbound(t, w, pushContext(w), "reviews-v1")
	alice := sign(key, claims("https://inline.example", "alice", "reviews", exp))
	check(h, "no token", nil, 200)
	check(h, "valid inline-JWKS token", bearer(alice), 200)
	check(h, "valid token, keys from jwksUri", bearer(sign(key, claims("https://fetched.example", "bob", "x", exp))), 200)
	check(h, "expired", bearer(sign(key, claims("https://inline.example", "alice", "reviews", time.Now().Add(-time.Hour).Unix()))), 401)
	check(h, "forged signature", bearer(sign(forgedKey, claims("https://inline.example", "alice", "reviews", exp))), 401)
	check(h, "wrong audience", bearer(sign(key, claims("https://inline.example", "alice", "ratings", exp))), 401)
	check(h, "unknown issuer", bearer(sign(key, claims("https://evil.example", "alice", "reviews", exp))), 401)

	if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: alice-only, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {requestPrincipals: ["https://inline.example/alice"]}}]
    when: [{key: "request.auth.claims[groups]", values: [reviewers]}]
`)); err != nil {
		t.Fatal(err)
	}
	h = startInbound(t, w, pushContext(w), "reviews-v1")
	check(h, "alice", bearer(alice), 200)
	check(h, "carol", bearer(sign(key, claims("https://inline.example", "carol", "reviews", exp))), 403)
	check(h, "no token", nil, 403)
}

// TestDenyAndAllowOnOneWorkload: a workload under both a DENY and an ALLOW
// policy gets two RBAC filters named envoy.filters.http.rbac, as istiod
// writes them. mesh-proxy refused the listener (NACK: a repeated filter
// name), so such a workload had no inbound config at all.
func TestDenyAndAllowOnOneWorkload(t *testing.T) {
	w, _ := world(t)
	if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-paths, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{to: [{operation: {paths: ["/reviews/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-review-1, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/reviews/1"]}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	h := startInbound(t, w, pushContext(w), "reviews-v1")
	for path, want := range map[string]int{"/reviews/0": 200, "/reviews/1": 403, "/ratings/0": 403} {
		if code, err := h.call(t, 9080, "default", "bookinfo-productpage", path); err != nil || code != want {
			t.Errorf("GET %s: %d %v; want %d", path, code, err, want)
		}
	}
}
