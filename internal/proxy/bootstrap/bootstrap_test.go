package bootstrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadYAMLBootstrap(t *testing.T) {
	b, err := Load("testdata/static.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.GetNode().GetId(); got != "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local" {
		t.Errorf("node.id = %q", got)
	}
	if n := len(b.GetStaticResources().GetClusters()); n != 2 {
		t.Errorf("static clusters = %d, want 2", n)
	}
	if c := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName(); c != "xds-grpc" {
		t.Errorf("ads cluster = %q", c)
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	cases := map[string]string{
		"unknown field":   "node: {id: x}\nstatic_resources: {clusterz: []}\n",
		"bad type url":    "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n    - filters:\n      - name: f\n        typed_config: {\"@type\": type.googleapis.com/does.not.Exist}\n",
		"invalid by PGV":  "static_resources:\n  clusters:\n  - name: \"\"\n",
		"not yaml at all": "{{{",
	}
	wants := map[string]string{
		"unknown field":   "clusterz",
		"bad type url":    "does.not.Exist",
		"invalid by PGV":  "Name",
		"not yaml at all": "not YAML or JSON",
	}
	for name, in := range cases {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), wants[name]) {
			t.Errorf("%s: error %v should mention %q", name, err, wants[name])
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(p, []byte("node: [1, 2"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v should name %s", err, p)
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/static.yaml")
	f.Add(seed)
	f.Add([]byte(`{"node":{"id":"x"}}`))
	f.Add([]byte("static_resources: {listeners: [{name: a}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		if err == nil && b == nil {
			t.Fatal("nil bootstrap without an error")
		}
	})
}
