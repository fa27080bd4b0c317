package xds

import (
	"strings"
	"testing"

	"mesh.dev/mesh/internal/pilot/telemetry"
)

// TestMeshOutboundPolicyRefused: a mesh config asking for an outbound
// policy pilot cannot carry out stops it, naming the field and what to
// write; the two modes it carries out pass.
func TestMeshOutboundPolicyRefused(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"outboundTrafficPolicy: {mode: ALLOW_ANY}\n", ""},
		{"outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n", ""},
		{"rootNamespace: mesh-system\n", ""},
		{"outboundTrafficPolicy: {mode: ALLOW_ANY_DYNAMIC_DNS}\n", "outboundTrafficPolicy.mode: ALLOW_ANY_DYNAMIC_DNS is not supported; use ALLOW_ANY or REGISTRY_ONLY"},
		{"outboundTrafficPolicy: {mode: ALLOW_ANY, tls: {mode: SIMPLE}}\n", "outboundTrafficPolicy.tls: applies only to ALLOW_ANY_DYNAMIC_DNS"},
	} {
		mc, err := telemetry.ParseMesh([]byte(c.yaml), "mesh")
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		err = CheckOutboundTrafficPolicy(mc)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v; want accepted", c.yaml, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v; want an error containing %q", c.yaml, err, c.want)
		}
	}
}
