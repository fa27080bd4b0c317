package enforced

import (
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshapi "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/pilot/ca"
)

func TestMeshConfigNamesWhatIsNotCarriedOut(t *testing.T) {
	y := `
rootNamespace: mesh-system
trustDomain: example.org
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
defaultServiceExportTo: ["."]
defaultConfig:
  concurrency: 2
  discoveryAddress: pilot:15012
  tracing: {sampling: 10, zipkin: {address: "zipkin:9411"}}
extensionProviders:
- name: z
  zipkin: {service: zipkin.obs.svc.cluster.local, port: 9411, timeout: 5s}
- name: dd
  datadog: {service: dd.obs.svc.cluster.local, port: 8126}
- name: ext
  envoyExtAuthzGrpc: {service: opa.opa.svc.cluster.local, port: 9191, failOpen: true, clearRouteCache: true}
- name: logs
  envoyFileAccessLog: {path: /dev/stdout, logFormat: {labels: {a: "%PROTOCOL%"}}}
`
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	mc := &meshapi.MeshConfig{}
	if err := protojson.Unmarshal(js, mc); err != nil {
		t.Fatal(err)
	}
	got := paths(MeshConfig(mc))
	want := []string{
		"meshConfig.defaultConfig.discoveryAddress",
		"meshConfig.defaultConfig.tracing.zipkin",
		"meshConfig.extensionProviders[0].zipkin.timeout",
		"meshConfig.extensionProviders[1].datadog",
		"meshConfig.extensionProviders[2].envoyExtAuthzGrpc.clearRouteCache",
		"meshConfig.trustDomain",
	}
	if !slices.Equal(got, want) {
		t.Errorf("not carried out: %q\nwant %q", got, want)
	}
	// The install's defaults (manifests/charts/pilot/values.yaml) are
	// carried out, so pilot does not warn about them at every start.
	defaults := &meshapi.MeshConfig{RootNamespace: "mesh-system", TrustDomain: "cluster.local", EnableAutoMtls: wrapperspb.Bool(true)}
	if f := MeshConfig(defaults); len(f) != 0 {
		t.Errorf("the install's default mesh config is reported: %v", f)
	}
	if TrustDomain != ca.TrustDomain {
		t.Errorf("the field table's trust domain %q is not the CA's %q", TrustDomain, ca.TrustDomain)
	}
	mc.TrustDomain, mc.EnableAutoMtls = "cluster.local", wrapperspb.Bool(false)
	if got := paths(MeshConfig(mc)); !slices.Contains(got, "meshConfig.enableAutoMtls") || slices.Contains(got, "meshConfig.trustDomain") {
		t.Errorf("enableAutoMtls false and trustDomain cluster.local: reported %q", got)
	}
}

// TestMeshConfigDocumented: docs/meshconfig.md names every mesh config
// field the mesh carries out (a provider type stands for its fields).
func TestMeshConfigDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/meshconfig.md")
	if err != nil {
		t.Fatal(err)
	}
	for p, e := range table[MeshConfigKind] {
		if !e.Enforced {
			continue
		}
		key := strings.TrimPrefix(p, "meshConfig.")
		if rest, ok := strings.CutPrefix(key, "extensionProviders."); ok && rest != "name" {
			kind, _, _ := strings.Cut(rest, ".")
			key = "extensionProviders." + kind
		}
		if !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("docs/meshconfig.md does not name %s, which the mesh carries out", key)
		}
	}
}
