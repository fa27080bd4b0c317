package pilotinterop

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/telemetry"
)

// TestAuditPolicyInAccessLog: an AUDIT AuthorizationPolicy on reviews,
// pilot's config served to mesh-proxy, changes no decision and marks what
// it selects for the access log, as Istio's does (Envoy's RBAC LOG action
// setting access_log_hint in envoy.common). A format showing
// %DYNAMIC_METADATA(envoy.common:access_log_hint)% logs true for an
// audited request, false for one the policy does not select, true for an
// audited request a DENY refuses (AUDIT comes before DENY), and true on a
// port no Service names, where the rule's HTTP part cannot be checked and
// is dropped so the rule audits more, never less.
func TestAuditPolicyInAccessLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "access.log")
	w, _ := world(t)
	mc, err := telemetry.ParseMesh([]byte("accessLogFile: "+logPath+"\naccessLogEncoding: JSON\n"+
		`accessLogFormat: '{"path":"%REQ(:PATH)%","code":"%RESPONSE_CODE%","cluster":"%UPSTREAM_CLUSTER%","audit":"%DYNAMIC_METADATA(envoy.common:access_log_hint)%"}'`+"\n"), "mesh")
	if err != nil {
		t.Fatal(err)
	}
	w.In.Mesh = mc
	if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: AUDIT
  rules: [{to: [{operation: {paths: ["/audit/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-secret, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  # ports keeps the rule off the port no Service names: there paths cannot
  # be checked, are dropped, and the rule would deny every connection.
  rules: [{to: [{operation: {ports: ["9080"], paths: ["/audit/secret"]}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	offService := newApp(t)
	h := startInboundTo(t, w, pushContext(w), "reviews-v1", authority, newApp(t))
	for _, c := range []struct {
		path string
		want int
	}{{"/audit/x", 200}, {"/other", 200}, {"/audit/secret", 403}} {
		if code, err := h.call(t, 9080, "default", "bookinfo-productpage", c.path); err != nil || code != c.want {
			t.Errorf("productpage → reviews %s: %d %v; want %d (AUDIT decides nothing)", c.path, code, err, c.want)
		}
	}
	if code, err := h.callTo(t, offService, "default", "bookinfo-productpage", "/other"); err != nil || code != 200 {
		t.Errorf("productpage → reviews' port %d (no Service): %d %v; want 200", offService.Port(), code, err)
	}

	lines := readLog(t, logPath, 4)
	got := map[string]string{}
	for _, l := range lines {
		key := str(l["path"])
		if strings.HasPrefix(str(l["cluster"]), "InboundPassthrough") {
			key = "tcp"
		}
		got[key] = fmt.Sprint(l["audit"])
	}
	for key, want := range map[string]string{"/audit/x": "true", "/other": "false", "/audit/secret": "true", "tcp": "true"} {
		if got[key] != want {
			t.Errorf("%s: audit %q in the access log, want %s; lines %v", key, got[key], want, lines)
		}
	}
}
