package profile_test

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/commands"
	"mesh.dev/mesh/internal/cli"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := commands.NewRootCommand(streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestList(t *testing.T) {
	out, err := run(t, "profile", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"default   base, pilot, ingress-gateway.mesh-ingressgateway",
		"demo      base, pilot, ingress-gateway.mesh-ingressgateway, egress-gateway.mesh-egressgateway",
		"empty     (none)",
		"minimal   base, pilot",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("profile list lacks %q:\n%s", line, out)
		}
	}
	out, _ = run(t, "profile", "list", "-o", "json")
	var rows []struct{ Name string }
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 4 {
		t.Errorf("json list = %s (%v)", out, err)
	}
}

func TestDump(t *testing.T) {
	out, err := run(t, "profile", "dump", "demo")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["kind"] != "MeshOperator" || doc["spec"].(map[string]any)["profile"] != "demo" {
		t.Errorf("dump demo = %v", doc)
	}
	out, err = run(t, "profile", "dump", "demo", "--config-path", "components.egressGateways[name:mesh-egressgateway].enabled", "-o", "json")
	if err != nil || strings.TrimSpace(out) != "true" {
		t.Errorf("config-path value = %q, %v; want true", out, err)
	}
	out, err = run(t, "profile", "dump", "--set", "hub=example.test", "--config-path", "hub")
	if err != nil || strings.TrimSpace(out) != "example.test" {
		t.Errorf("dump with --set hub: %q, %v", out, err)
	}
	if _, err := run(t, "profile", "dump", "tiny"); !cli.IsUsage(err) || !strings.Contains(err.Error(), "default, demo, empty, minimal") {
		t.Errorf("unknown profile: %v", err)
	}
	if _, err := run(t, "profile", "dump", "--config-path", "components.pilto"); !cli.IsUsage(err) || !strings.Contains(err.Error(), `"components.pilot"`) {
		t.Errorf("unknown config path: %v", err)
	}
}

func TestDiff(t *testing.T) {
	out, err := run(t, "profile", "diff", "default", "minimal")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "spec.components.ingressGateways[name:mesh-ingressgateway].enabled: true -> false") {
		t.Errorf("diff default minimal:\n%s", out)
	}
	out, _ = run(t, "profile", "diff", "demo", "demo")
	if !strings.Contains(out, "are the same") {
		t.Errorf("same profile: %s", out)
	}
	if _, err := run(t, "profile", "diff", "default", "nope"); !cli.IsUsage(err) {
		t.Errorf("unknown profile: %v", err)
	}
}
