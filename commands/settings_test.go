package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/internal/cli"
)

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewRootCommand(streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestSettingsFillUnsetFlags(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	os.MkdirAll(filepath.Join(cfg, "mesh"), 0o755)
	os.WriteFile(filepath.Join(cfg, "mesh", "config.yaml"), []byte("set:\n- profile=minimal\n- hub=from-file.test\nrevision: filerev\n"), 0o644)

	out, err := runRoot(t, "manifest", "generate")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "mesh-ingressgateway") || !strings.Contains(out, "from-file.test/mesh-pilot") || !strings.Contains(out, "mesh-pilot-filerev") {
		t.Error("config.yaml set: [profile=minimal, hub=...] and revision were not applied")
	}

	t.Setenv("MESH_REVISION", "envrev")
	out, _ = runRoot(t, "manifest", "generate")
	if !strings.Contains(out, "mesh-pilot-envrev") {
		t.Error("MESH_REVISION did not win over config.yaml")
	}
	out, _ = runRoot(t, "manifest", "generate", "--revision", "flagrev")
	if !strings.Contains(out, "mesh-pilot-flagrev") || strings.Contains(out, "envrev") {
		t.Error("--revision did not win over MESH_REVISION")
	}

	os.WriteFile(filepath.Join(cfg, "mesh", "config.yaml"), []byte("set: [\n"), 0o644)
	if _, err := runRoot(t, "version"); !cli.IsData(err) || !strings.Contains(err.Error(), "config.yaml") {
		t.Errorf("a broken settings file: err = %v, want a data error naming the file", err)
	}
}
