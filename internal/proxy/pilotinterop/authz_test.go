package pilotinterop

import (
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
