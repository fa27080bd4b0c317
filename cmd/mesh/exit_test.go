package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands"
)

// runMesh runs the command tree in-process and maps the result the way main does.
func runMesh(t *testing.T, args ...string) (int, string) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	root := commands.NewRootCommand(streams)
	root.SetArgs(args)
	code := exitCode(root.Execute(), streams)
	return code, errOut.String()
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("kind: MeshOperator\nspec:\n  hub: [\n"), 0o644)
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	os.WriteFile(a, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: one}\n"), 0o644)
	os.WriteFile(b, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: two}\n"), 0o644)
	for _, tt := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"manifest", "generate", "--set", "profile=demo"}, 0, ""},
		{[]string{"manifest", "generate", "--set", "profile=nope"}, 64, "valid profiles are"},
		{[]string{"manifest", "generate", "--set", "components.pilot.enabld=true"}, 64, `did you mean "components.pilot.enabled"`},
		{[]string{"manifest", "generate", "--no-such-flag"}, 64, "unknown flag"},
		{[]string{"manifest", "generate", "-f", bad}, 65, bad + ":"},
		{[]string{"manifest", "diff", a, a}, 0, ""},
		{[]string{"manifest", "diff", a, b}, 1, ""},
		{[]string{"profile", "diff", "default"}, 64, "accepts 2 arg"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stderr := runMesh(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("stderr %q does not mention %q", stderr, tt.inStderr)
			}
			if tt.code == 1 && stderr != "" {
				t.Errorf("a diff that differs printed an error: %q", stderr)
			}
		})
	}
}
