package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinary builds mesh the way the Makefile and goreleaser do, with the
// version stamped by ldflags, and checks what a shell sees: the version and
// the process exit codes.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "mesh")
	ldflags := "-X mesh.dev/mesh/internal/version.Version=9.8.7-test -X mesh.dev/mesh/internal/version.GitCommit=abc1234"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "--short").Output()
	if err != nil || strings.TrimSpace(string(out)) != "9.8.7-test" {
		t.Errorf("mesh version --short = %q, %v", out, err)
	}
	out, _ = exec.Command(bin, "version", "-o", "json").Output()
	if !strings.Contains(string(out), `"gitCommit": "abc1234"`) {
		t.Errorf("mesh version -o json = %s", out)
	}
	out, _ = exec.Command(bin, "manifest", "generate", "--set", "profile=minimal").Output()
	if !strings.Contains(string(out), "image: mesh.dev/mesh-pilot:9.8.7-test") {
		t.Error("rendered images do not default to the stamped version")
	}
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"manifest", "generate", "--set", "profile=nope"}, 64},
		{[]string{"no-such-command"}, 64},
		{[]string{"manifest", "diff", "/nonexistent-a", "/nonexistent-b"}, 64},
	} {
		cmd := exec.Command(bin, tt.args...)
		cmd.Env = append(cmd.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != tt.code {
			t.Errorf("mesh %v: %v, want exit %d", tt.args, err, tt.code)
		}
	}
}
