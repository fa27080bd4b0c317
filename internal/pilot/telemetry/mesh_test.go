package telemetry

import (
	"strings"
	"testing"

	meshapi "istio.io/api/mesh/v1alpha1"
)

// ParseMesh is how pilot reads its mesh config file at start: a field
// MeshConfig does not have, a bad enum value or bad YAML stops it with the
// file and the field, since parts of the config decide security.
func TestParseMesh(t *testing.T) {
	mc, err := ParseMesh([]byte("rootNamespace: mesh-system\ntrustDomain: cluster.local\npathNormalization:\n  normalization: MERGE_SLASHES\n"), "mesh")
	if err != nil {
		t.Fatal(err)
	}
	if mc.GetPathNormalization().GetNormalization() != meshapi.MeshConfig_ProxyPathNormalization_MERGE_SLASHES || mc.RootNamespace != "mesh-system" {
		t.Errorf("parsed %v", mc)
	}
	for _, tc := range []struct{ in, want string }{
		{"pathNormalisation: {normalization: NONE}\n", "pathNormalisation"},
		{"pathNormalization: {normalization: SOME}\n", `"SOME"`},
		{"rootNamespace: [a\n", "/etc/mesh/config/mesh"},
	} {
		_, err := ParseMesh([]byte(tc.in), "/etc/mesh/config/mesh")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "/etc/mesh/config/mesh") {
			t.Errorf("%q: %v; want an error naming the file and containing %q", tc.in, err, tc.want)
		}
	}
}
