package pilot

import (
	"strings"
	"testing"

	meshapi "istio.io/api/mesh/v1alpha1"
)

func TestParseMeshConfig(t *testing.T) {
	mc, err := parseMeshConfig("mesh", []byte("rootNamespace: mesh-system\ntrustDomain: cluster.local\npathNormalization:\n  normalization: MERGE_SLASHES\n"))
	if err != nil {
		t.Fatal(err)
	}
	if mc.GetPathNormalization().GetNormalization() != meshapi.MeshConfig_ProxyPathNormalization_MERGE_SLASHES || mc.RootNamespace != "mesh-system" {
		t.Errorf("parsed %v", mc)
	}
	for _, tc := range []struct{ in, want string }{
		{"pathNormalisation: {normalization: NONE}\n", `mesh config /etc/mesh/config/mesh: not a mesh.v1alpha1.MeshConfig: `},
		{"pathNormalization: {normalization: SOME}\n", `invalid value for enum field normalization: "SOME"`},
		{"rootNamespace: [a\n", "invalid YAML"},
	} {
		_, err := parseMeshConfig("/etc/mesh/config/mesh", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want an error containing %q", tc.in, err, tc.want)
		}
	}
	if _, err := parseMeshConfig("mesh", []byte("pathNormalisation: {normalization: NONE}\n")); err == nil || !strings.Contains(err.Error(), "pathNormalisation") {
		t.Errorf("unknown field: %v; want it named", err)
	}
}
