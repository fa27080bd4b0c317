package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/sandbox"
)

// TestDownLeavesTheMachineAsItWas starts what `make demo` starts (a detached
// sandbox, bin/sandbox-runtime in a session of its own, a pod running as
// another user), kills the runtime with SIGKILL so that it cleans nothing
// up, and checks that `mesh-demo down` still leaves no process, network
// namespace, bridge or route of it (#23). Tests of other packages run
// runtimes beside this one and may claim the freed subnet, names and all,
// between the kill and down: what was ours is known by namespace inode and
// bridge ifindex, not by name.
func TestDownLeavesTheMachineAsItWas(t *testing.T) {
	if os.Getenv(sandbox.SkipEnv) == "skip" {
		t.Skip(sandbox.SkipEnv + "=skip: no sandbox")
	}
	if os.Geteuid() != 0 {
		t.Skip("the sandbox runtime needs root")
	}
	tools, err := sandbox.FindBinDir()
	if err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat(filepath.Join(tools, "kube-apiserver")); err != nil {
		t.Skip("no sandbox binaries: run make tools")
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin, "mesh.dev/mesh/cmd/mesh-sample", "mesh.dev/mesh/internal/sandbox/runtime/cmd/sandbox-runtime").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	d := dirs{root: root, state: filepath.Join(t.TempDir(), "state"), bin: bin}
	t.Cleanup(func() { down(io.Discard, d) }) // whatever happens below

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := sandbox.Start(ctx, sandbox.Options{Dir: d.state, Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	node, err := startRuntime(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	subnet := node[strings.LastIndex(node, "-")+1:]
	bridge, nsPrefix := "msbr"+subnet, "msb"+subnet+"-"
	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
	uid := int64(1234)
	pod, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sample"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sample", Image: "mesh.dev/mesh-sample:test",
			Args: []string{"--role=details"}, SecurityContext: &corev1.SecurityContext{RunAsUser: &uid}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var podPID int
	for deadline := time.Now().Add(time.Minute); podPID == 0; time.Sleep(200 * time.Millisecond) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st := p.Status.ContainerStatuses; len(st) == 1 && st[0].State.Running != nil {
			podPID, _ = strconv.Atoi(strings.TrimPrefix(st[0].ContainerID, "sandbox://"))
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not running on %s in a minute: %+v", node, p.Status)
		}
	}
	ours := nsInodes(nsPrefix)
	bridgeIndex := ifindex(bridge)
	if len(ours) == 0 || bridgeIndex == "" || !guardRoute() {
		t.Fatalf("the running demo shows no namespace %s*, bridge %s or guard route: the checks below would prove nothing", nsPrefix, bridge)
	}
	b, err := os.ReadFile(d.runtimePID())
	if err != nil {
		t.Fatal(err)
	}
	runtimePID, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// A second `make demo` finds the demo up and starts nothing.
	if err := up(d); err != nil {
		t.Fatalf("up with the demo up: %v", err)
	}
	if b, _ := os.ReadFile(d.runtimePID()); strings.TrimSpace(string(b)) != strconv.Itoa(runtimePID) || !isRuntime(runtimePID) {
		t.Fatalf("up with the demo up replaced its runtime (pid file now %q)", b)
	}
	// The worst case: the runtime dies without cleaning up.
	if err := syscall.Kill(runtimePID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for isRuntime(runtimePID) {
		time.Sleep(50 * time.Millisecond)
	}

	var out strings.Builder
	if err := down(&out, d); err != nil {
		t.Fatal(err)
	}
	t.Logf("down said:\n%s", out.String())
	// Down removes what it finds unclaimed; a runtime that claimed the
	// subnet first removes it while claiming: either way it goes.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		left := leftOf(ours, nsPrefix, bridge, bridgeIndex, podPID)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after down: %s", strings.Join(left, ", "))
		}
	}
	if exists(d.state) {
		t.Errorf("%s left after down", d.state)
	}
	// The route is shared by every runtime: down removes it or says which
	// live runtimes it kept it for.
	said := out.String()
	if guardRoute() && !strings.Contains(said, "Removed what dead sandbox runtimes left") && !strings.Contains(said, "Kept the route") {
		t.Error("route unreachable 198.18.0.0/15 left after down, and down said neither that it removed it nor why it kept it")
	}
}

// leftOf names what of the killed demo still exists: its namespaces (by
// inode), its bridge (by ifindex), its pod's process. A bridge of that name
// with a new ifindex means another runtime claimed the subnet, and it
// removes every namespace of the subnet before it makes its bridge: the
// namespaces of that name are then its own.
func leftOf(ours map[uint64]string, nsPrefix, bridge, bridgeIndex string, podPID int) []string {
	var left []string
	if alive(podPID) {
		left = append(left, "the pod's process "+strconv.Itoa(podPID))
	}
	now := ifindex(bridge)
	if now != "" && now != bridgeIndex {
		return left
	}
	if now == bridgeIndex {
		left = append(left, "bridge "+bridge)
	}
	for ino, name := range nsInodes(nsPrefix) {
		if _, ok := ours[ino]; ok {
			left = append(left, "namespace "+name)
		}
	}
	return left
}

// nsInodes maps the inode of each network namespace named with prefix to
// its name.
func nsInodes(prefix string) map[uint64]string {
	out := map[uint64]string{}
	for _, name := range namespaces(prefix) {
		var st syscall.Stat_t
		if syscall.Stat("/run/netns/"+name, &st) == nil {
			out[st.Ino] = name
		}
	}
	return out
}

// ifindex is the link's index, "" when there is no such link.
func ifindex(link string) string {
	b, err := os.ReadFile("/sys/class/net/" + link + "/ifindex")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func namespaces(prefix string) []string {
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func guardRoute() bool {
	out, _ := exec.Command("ip", "route", "show", "type", "unreachable", "198.18.0.0/15").Output()
	return strings.Contains(string(out), "198.18.0.0/15")
}

// alive says whether pid runs (a zombie counts as gone).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat))
	return len(f) < 3 || f[2] != "Z"
}
