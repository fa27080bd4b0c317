package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInputExitCodes runs every command with each class of mistake a
// user or a CI script makes and checks that the same mistake gives the same
// exit code and the same error shape everywhere: one "Error: ..." line
// naming what was wrong, followed, for bad usage only, by the help hint.
func TestBadInputExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("malformed.yaml", "kind: MeshOperator\nspec:\n  hub: [\n")
	unknownProfile := write("profile.yaml", "apiVersion: install.mesh.io/v1alpha1\nkind: MeshOperator\nspec:\n  profile: nope\n")
	missingKubeconfig := filepath.Join(dir, "no-such-kubeconfig")
	// A cluster nobody answers at: port 1 on loopback refuses at once.
	unreachable := write("kubeconfig", `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	manifestA := write("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")

	// Each command as a CI script would call it, with what it needs to get
	// as far as the mistake.
	type command struct {
		args    []string
		renders bool // takes --set and -f
		cluster bool // talks to the cluster
		output  bool // takes -o
	}
	commands := []command{
		{args: []string{"manifest", "generate"}, renders: true}, // its -o is a folder
		{args: []string{"profile", "dump"}, renders: true, output: true},
		{args: []string{"install", "-y"}, renders: true, cluster: true, output: true},
		{args: []string{"upgrade", "-y"}, renders: true, cluster: true, output: true},
		{args: []string{"precheck"}, renders: true, cluster: true, output: true},
		{args: []string{"verify-install"}, renders: true, cluster: true, output: true},
		{args: []string{"uninstall", "-y"}, cluster: true, output: true},
		{args: []string{"tag", "list"}, cluster: true, output: true},
		{args: []string{"proxy-status"}, cluster: true, output: true},
		{args: []string{"analyze", "--use-kube=true"}, cluster: true, output: true},
		{args: []string{"manifest", "diff", manifestA, manifestA}, output: true},
		{args: []string{"profile", "list"}, output: true},
		{args: []string{"version"}, output: true},
	}
	type mistake struct {
		class   string
		applies func(command) bool
		args    []string
		code    int
		names   string // what the error line must mention
	}
	all := func(command) bool { return true }
	renders := func(c command) bool { return c.renders }
	cluster := func(c command) bool { return c.cluster }
	output := func(c command) bool { return c.output }
	mistakes := []mistake{
		{"unknown flag", all, []string{"--no-such-flag"}, 64, "--no-such-flag"},
		{"bad -o value", output, []string{"-o", "xml"}, 64, `"xml"`},
		{"bad --revision value", renders, []string{"--revision", "Bad_1"}, 64, "Bad_1"},
		{"unknown --set path", renders, []string{"--set", "components.pilot.enabld=true"}, 64, "components.pilot.enabld"},
		{"unknown profile in --set", renders, []string{"--set", "profile=nope"}, 64, "nope"},
		{"malformed -f file", renders, []string{"-f", malformed}, 65, malformed},
		{"unknown profile in -f file", renders, []string{"-f", unknownProfile}, 65, "nope"},
		{"unreadable kubeconfig", cluster, []string{"--kubeconfig", missingKubeconfig}, 1, missingKubeconfig},
		{"unreachable cluster", cluster, []string{"--kubeconfig", unreachable}, 1, "127.0.0.1:1"},
	}
	for _, m := range mistakes {
		for _, c := range commands {
			if !m.applies(c) {
				continue
			}
			args := append(append([]string{}, c.args...), m.args...)
			t.Run(m.class+"/"+strings.Join(c.args[:min(2, len(c.args))], " "), func(t *testing.T) {
				code, stderr := runMesh(t, args...)
				if code != m.code {
					t.Errorf("mesh %s: exit %d, want %d; stderr:\n%s", strings.Join(args, " "), code, m.code, stderr)
				}
				lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
				want := 1
				if m.code == 64 {
					want = 2
				}
				if len(lines) != want || !strings.HasPrefix(lines[0], "Error: ") {
					t.Fatalf("mesh %s: stderr is not one Error: line%s:\n%s", strings.Join(args, " "),
						map[bool]string{true: " and the help hint", false: ""}[want == 2], stderr)
				}
				if !strings.Contains(lines[0], m.names) {
					t.Errorf("mesh %s: %q does not name %q", strings.Join(args, " "), lines[0], m.names)
				}
				if want == 2 && lines[1] != "Run 'mesh --help' for usage." {
					t.Errorf("mesh %s: second line %q, want the help hint", strings.Join(args, " "), lines[1])
				}
			})
		}
	}
}
