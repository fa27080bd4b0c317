// Package e2e walks the README's demo on the sandbox with the sandbox
// runtime: the mesh's own binaries run as pods, the rest is simulated.
package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/demo"
	"mesh.dev/mesh/internal/sandbox/runtime"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	if walkSkip = whyNotWalk(); walkSkip != "" {
		// Every test here skips: do not pay for a sandbox.
		os.Exit(m.Run())
	}
	sandboxtest.Main(m)
}

// walkSkip is why the walk cannot run on this machine, "" when it can.
var walkSkip string

// whyNotWalk checks what the walk needs: the sandbox's binaries (make
// tools), the mesh's (make build), and a host the runtime can use (root,
// iproute2, iptables). `make test` builds both sets of binaries.
func whyNotWalk() string {
	if os.Getenv(sandbox.SkipEnv) == "skip" {
		return sandbox.SkipEnv + "=skip (make test-unit): no sandbox"
	}
	if err := runtime.CheckHost(); err != nil {
		return "the demo walk runs pods in network namespaces: " + err.Error()
	}
	tools, err := sandbox.FindBinDir()
	if err != nil {
		return err.Error()
	}
	if _, err := os.Stat(filepath.Join(tools, "kube-apiserver")); err != nil {
		return "no sandbox binaries in " + tools + ": run `make tools` (make test does)"
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		return err.Error()
	}
	for _, b := range append([]string{"mesh"}, runtime.Binaries...) {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			return "bin/" + b + " missing: run `make build` (make test does)"
		}
	}
	return ""
}

// demoEnabled skips the test, with the reason, where the walk cannot run.
func demoEnabled(t *testing.T) {
	if walkSkip != "" {
		t.Skip(walkSkip)
	}
}

type env struct {
	t    *testing.T
	c    *sandbox.Cluster
	cs   kubernetes.Interface
	rt   *runtime.Runtime
	bin  string
	root string
	// runtimeLog is the sandbox runtime's own log, shown when a test fails.
	runtimeLog string
}

func setup(t *testing.T) *env {
	c := sandboxtest.Cluster(t)
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	o, err := runtime.ForCluster(c, bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Images) != len(runtime.Binaries) {
		t.Fatalf("bin/ has %v of %v: run `make build`", o.Images, runtime.Binaries)
	}
	var runtimeLog string
	o.Logger, runtimeLog = sandboxtest.RuntimeLog(t)
	o.AgentMetricsAddress = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := runtime.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, c: c, cs: kubernetes.NewForConfigOrDie(c.RESTConfig()), rt: rt, bin: bin, root: root, runtimeLog: runtimeLog}
	t.Cleanup(func() {
		if t.Failed() {
			e.dump()
		}
		rt.Stop()
	})
	return e
}

// mesh runs the CLI as a user would, against the sandbox.
func (e *env) mesh(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "mesh"), append(args, "--kubeconfig", e.c.KubeconfigPath())...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	e.t.Logf("$ mesh %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func (e *env) dump() { sandboxtest.Dump(e.t, e.cs, e.runtimeLog, e.rt.LogDir()) }

// waitFor polls cond every half second until it holds or timeout passes.
func (e *env) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not reached in %s; last state: %s", what, timeout, last)
		}
	}
}

// TestDemo is the README's demo walk (make demo), every step asserted.
func TestDemo(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	w := &demo.Walk{Kubeconfig: e.c.KubeconfigPath(), Config: e.c.RESTConfig(), Bin: e.bin,
		Fixtures: filepath.Join(root, "..", "shared", "fixtures"), RuntimeNode: e.rt.NodeName(), WorkDir: t.TempDir(), Out: tlogWriter{t}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// tlogWriter sends the walk's narration to the test log, a line at a time.
type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// reviewsVersion fetches the product page and returns the reviews version it
// shows; a page that is not a 200 or shows an error is an error.
func reviewsVersion(client *http.Client, url string) (string, error) {
	v, _, err := productPage(client, url, "")
	return v, err
}

// productPage fetches the product page, as user when not empty, and
// returns the reviews version it shows and the page (demo.ProductPage).
func productPage(client *http.Client, url, user string) (string, string, error) {
	return demo.ProductPage(client, url, user)
}
