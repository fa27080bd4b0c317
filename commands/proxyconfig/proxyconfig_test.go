package proxyconfig

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixturePath names a real Envoy dump in ../shared/fixtures/envoy next to the repository.
func fixturePath(t testing.TB, name string) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(here), "..", "..", "..", "shared", "fixtures", "envoy", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return p
}

// certTime is a moment when the sidecar fixture's workload certificate had
// expired and its root was valid, so the VALID column shows both cases.
var certTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func init() { clock = func() time.Time { return certTime } }

// run executes `mesh proxy-config args...` in-process and returns stdout, stderr and the error.
func run(t *testing.T, stdin string, args ...string) (string, string, error) {
	return runIn(t, stdin, "", args...)
}

// runWithKubeconfig is run with --kubeconfig set, as the root command would.
func runWithKubeconfig(t *testing.T, kubeconfig string, args ...string) (string, string, error) {
	return runIn(t, "", kubeconfig, args...)
}

func runIn(t *testing.T, stdin, kubeconfig string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx := cli.NewContext(genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	if kubeconfig != "" {
		ctx.ConfigFlags.KubeConfig = &kubeconfig
	}
	cmd := NewCommand(ctx)
	cmdutil.MarkUsage(cmd) // as the root command does
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
