package manifest_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands"
	"mesh.dev/mesh/internal/cli"
	imanifest "mesh.dev/mesh/internal/manifest"
)

// run executes the real command tree in-process.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := commands.NewRootCommand(streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func TestGenerateStdout(t *testing.T) {
	out, _, err := run(t, "manifest", "generate", "--set", "profile=demo", "--set", "tag=9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := imanifest.Parse("stdout", []byte(out))
	if err != nil {
		t.Fatalf("output is not a manifest: %v", err)
	}
	if objs[0].GetKind() != "CustomResourceDefinition" || !strings.HasSuffix(objs[len(objs)-1].GetKind(), "WebhookConfiguration") &&
		objs[len(objs)-1].GetKind() != "HorizontalPodAutoscaler" {
		t.Errorf("first %s, last %s", objs[0].GetKind(), objs[len(objs)-1].GetKind())
	}
	if !strings.Contains(out, "image: mesh.dev/mesh-pilot:9.9.9") || !strings.Contains(out, "name: mesh-egressgateway") {
		t.Error("demo output lacks the pilot image with the --set tag or the egress gateway")
	}
	again, _, _ := run(t, "manifest", "generate", "--set", "profile=demo", "--set", "tag=9.9.9")
	if again != out {
		t.Error("two runs printed different manifests")
	}
}

func TestGenerateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if _, _, err := run(t, "manifest", "generate", "-o", dir); err != nil {
		t.Fatal(err)
	}
	names := list(t, dir)
	want := "00-base.yaml 01-pilot.yaml 02-ingress-gateway.mesh-ingressgateway.yaml"
	if names != want {
		t.Fatalf("files = %s, want %s", names, want)
	}
	// A smaller profile removes the files of components it no longer renders, and leaves others' files alone.
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	if _, _, err := run(t, "manifest", "generate", "--set", "profile=minimal", "-o", dir); err != nil {
		t.Fatal(err)
	}
	if got := list(t, dir); got != "00-base.yaml 01-pilot.yaml notes.txt" {
		t.Errorf("after minimal: %s", got)
	}
}

func TestGenerateFailureWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("kind: MeshOperator\nspec:\n  values:\n    pilot:\n      resources: 12\n"), 0o644)
	_, _, err := run(t, "manifest", "generate", "-f", bad, "-o", dir)
	if err == nil {
		t.Fatal("rendering with resources: 12 succeeded")
	}
	if _, statErr := os.Stat(dir); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("output directory exists after a failed render (%v)", statErr)
	}
}

func TestGenerateErrorsClassified(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("kind: MeshOperator\nspec:\n  hub: [\n"), 0o644)
	for _, tt := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"--set", "profile=tiny"}, true, "valid profiles are default, demo, empty, minimal"},
		{[]string{"--set", "componets.pilot.enabled=true"}, true, `did you mean "components"`},
		{[]string{"--revision", "Not_Valid"}, true, "--revision"},
		{[]string{"-f", bad}, false, bad + ":"},
		{[]string{"extra-arg"}, true, "unknown command"},
	} {
		_, _, err := run(t, append([]string{"manifest", "generate"}, tt.args...)...)
		if err == nil {
			t.Errorf("%v: no error", tt.args)
			continue
		}
		if cli.IsUsage(err) != tt.usage || (!tt.usage && !cli.IsData(err)) {
			t.Errorf("%v: error %v: usage=%v data=%v, want usage=%v", tt.args, err, cli.IsUsage(err), cli.IsData(err), tt.usage)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %q does not mention %q", tt.args, err, tt.want)
		}
	}
}

func TestIstioOperatorWarnings(t *testing.T) {
	f := filepath.Join(t.TempDir(), "iop.yaml")
	os.WriteFile(f, []byte("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  profile: minimal\n  components:\n    cni:\n      enabled: true\n"), 0o644)
	out, errOut, err := run(t, "manifest", "generate", "-f", f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "Warning:") || !strings.Contains(errOut, "spec.components.cni") {
		t.Errorf("stderr = %q, want a warning naming spec.components.cni", errOut)
	}
	if strings.Contains(out, "mesh-ingressgateway") {
		t.Error("profile minimal from the IstioOperator file still renders the ingress gateway")
	}
}

func TestDiff(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	outA, _, _ := run(t, "manifest", "generate")
	outB, _, _ := run(t, "manifest", "generate", "--set", "components.pilot.k8s.replicaCount=3", "--set", "components.egressGateways[name:mesh-egressgateway].enabled=true", "--set", "meshConfig.accessLogFile=/dev/stdout")
	os.WriteFile(a, []byte(outA), 0o644)
	os.WriteFile(b, []byte(outB), 0o644)

	out, _, err := run(t, "manifest", "diff", a, a)
	if err != nil || !strings.Contains(out, "same") {
		t.Errorf("same manifests: out %q err %v", out, err)
	}
	out, _, err = run(t, "manifest", "diff", a, b)
	var silent *cli.SilentError
	if !errors.As(err, &silent) || silent.Code != 1 {
		t.Fatalf("different manifests: err = %v, want exit status 1", err)
	}
	for _, w := range []string{"+ added:   apps/Deployment mesh-system/mesh-egressgateway", "~ changed: autoscaling/HorizontalPodAutoscaler mesh-system/mesh-pilot", "spec.minReplicas: 1 -> 3", "    data.mesh:\n      - accessLogFile: \"\"\n      + accessLogFile: /dev/stdout\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("diff output lacks %q:\n%s", w, out)
		}
	}
	out, _, _ = run(t, "manifest", "diff", a, b, "-o", "json")
	if !strings.Contains(out, `"added": [`) {
		t.Errorf("json diff = %s", out)
	}
	os.WriteFile(b, []byte("a: [\n"), 0o644)
	if _, _, err := run(t, "manifest", "diff", a, b); !cli.IsData(err) {
		t.Errorf("malformed manifest: err = %v, want a data error", err)
	}
	if _, _, err := run(t, "manifest", "diff", a); !cli.IsUsage(err) {
		t.Errorf("one argument: err = %v, want a usage error", err)
	}
}

func list(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Name())
	}
	return b.String()
}
