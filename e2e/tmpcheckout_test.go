package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/demo"
	"mesh.dev/mesh/internal/sandbox/runtime"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// TestDemoFromCheckoutUnderTmp walks the demo with the binaries of a clone
// of this repository under /tmp, built there with `make build`, as a user
// who clones into /tmp would (#25): Bookinfo's reviews mounts an emptyDir on
// /tmp, which covers the clone's bin/ inside its pods. It runs on a sandbox
// of its own, so that what TestDemo left in the package's sandbox does not
// matter. The clone is of the last commit: uncommitted changes are not in it.
func TestDemoFromCheckoutUnderTmp(t *testing.T) {
	demoEnabled(t)
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Run(); err != nil {
		t.Skipf("%s is not a git checkout to clone: %v", root, err)
	}
	tmp, err := os.MkdirTemp("/tmp", "mesh-checkout-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	clone := filepath.Join(tmp, "mesh")
	for _, c := range [][]string{{"git", "clone", "-q", root, clone}, {"make", "-C", clone, "build"}} {
		cmd := exec.Command(c[0], c[1:]...)
		out, err := cmd.CombinedOutput()
		t.Logf("$ %s\n%s", strings.Join(c, " "), out)
		if err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(clone, "bin")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, err := sandbox.Start(ctx, sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	o, err := runtime.ForCluster(c, bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Images) != len(runtime.Binaries) {
		t.Fatalf("%s has %v of %v after make build", bin, o.Images, runtime.Binaries)
	}
	var runtimeLog string
	o.Logger, runtimeLog = sandboxtest.RuntimeLog(t)
	rt, err := runtime.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
	e := &env{t: t, c: c, cs: cs, rt: rt, bin: bin, root: clone, runtimeLog: runtimeLog}
	t.Cleanup(func() {
		if t.Failed() {
			e.dump()
		}
		rt.Stop()
	})

	w := &demo.Walk{Kubeconfig: c.KubeconfigPath(), Config: c.RESTConfig(), Bin: bin,
		Fixtures: filepath.Join(root, "..", "shared", "fixtures"), RuntimeNode: rt.NodeName(), WorkDir: t.TempDir(), Out: tlogWriter{t}}
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// The walk passed with a volume covering the binaries' folder in at
	// least one pod (else this test no longer tests what it is for).
	pods, err := cs.CoreV1().Pods("bookinfo").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var covering []string
	for _, p := range pods.Items {
		for _, ct := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
			for _, m := range ct.VolumeMounts {
				if rel, err := filepath.Rel(m.MountPath, bin); err == nil && !strings.HasPrefix(rel, "..") {
					covering = append(covering, p.Name+"/"+ct.Name+":"+m.MountPath)
				}
			}
		}
	}
	if len(covering) == 0 {
		t.Fatalf("no Bookinfo pod mounts a volume over %s: the walk did not test a covered bin/", bin)
	}
	t.Logf("volumes over %s: %v", bin, covering)
}
