package rbac

import (
	"testing"

	"mesh.dev/mesh/internal/proxy/httpfilter"
)

// Envoy's rule for the shared access_log_hint: a true is never overwritten
// by a false (one LOG filter matched, another did not), a false may become
// true, and other keys of envoy.common are kept.
func TestAccessLogHintKeepsTrue(t *testing.T) {
	md := &httpfilter.Metadata{}
	md.Set(CommonNamespace, map[string]any{"other": "kept"})
	SetAccessLogHint(md, false)
	SetAccessLogHint(md, true)
	SetAccessLogHint(md, false)
	m, _ := md.Get(CommonNamespace).(map[string]any)
	if m[AccessLogHint] != true || m["other"] != "kept" {
		t.Errorf("envoy.common = %v; want access_log_hint true and other kept", m)
	}
}
