package kubeinject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx := cli.NewContext(genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	cmd := NewCommand(ctx)
	cmdutil.MarkUsage(cmd) // as the root command does
	cmd.SetArgs(append([]string{}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), err
}

func TestInjectGolden(t *testing.T) {
	got, err := run(t, "", "-f", "testdata/shop.yaml", "--injector-values", "testdata/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "shop-injected.yaml")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s; rerun with -update if intended", golden)
	}
	if n := strings.Count(got, "name: mesh-proxy\n"); n != 3 {
		t.Errorf("%d proxies, want 3 (Deployment, StatefulSet, CronJob)", n)
	}
}

func TestInjectBookinfo(t *testing.T) {
	got, err := run(t, "", "-f", "../../../shared/fixtures/bookinfo/bookinfo.yaml", "--injector-values", "testdata/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Six Deployments in Bookinfo: each gets the proxy and the init container.
	if n := strings.Count(got, "name: mesh-proxy\n"); n != 6 {
		t.Errorf("%d mesh-proxy containers, want 6 (one per Deployment)", n)
	}
	if n := strings.Count(got, "name: mesh-init\n"); n != 6 {
		t.Errorf("%d mesh-init containers, want 6", n)
	}
	if !strings.Contains(got, "kind: Service\n") || !strings.Contains(got, "kind: ServiceAccount\n") {
		t.Error("non-pod documents were dropped")
	}
}

func TestOptOutAndStdin(t *testing.T) {
	pod := `apiVersion: v1
kind: Pod
metadata:
  name: legacy
  labels: {app: legacy, sidecar.mesh.io/inject: "false"}
spec:
  containers: [{name: app, image: legacy:1}]
`
	got, err := run(t, pod, "-f", "-", "--injector-values", "testdata/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "mesh-proxy") || got != pod {
		t.Errorf("opted-out pod was changed:\n%s", got)
	}
	got, err = run(t, strings.Replace(pod, `, sidecar.mesh.io/inject: "false"`, "", 1), "-f", "-", "--injector-values", "testdata/values.yaml", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `"kind": "List"`) || !strings.Contains(got, `"name": "mesh-proxy"`) {
		t.Errorf("json output lacks the list or the proxy:\n%s", got)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := run(t, ""); !cli.IsUsage(err) {
		t.Errorf("no -f: %v, want a usage error", err)
	}
	if _, err := run(t, "", "-f", "x.yaml", "-o", "table"); !cli.IsUsage(err) {
		t.Errorf("-o table: %v, want a usage error", err)
	}
	_, err := run(t, "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: many\n", "-f", "-", "--injector-values", "testdata/values.yaml")
	if !cli.IsData(err) || !strings.Contains(err.Error(), "document 1") {
		t.Errorf("bad replicas: %v, want a data error naming the document", err)
	}
	bad := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(bad, []byte("logLevel: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, "", "-f", "-", "--injector-values", bad)
	if !cli.IsData(err) || !strings.Contains(err.Error(), "proxyImage is required") {
		t.Errorf("values without proxyImage: %v", err)
	}
}
