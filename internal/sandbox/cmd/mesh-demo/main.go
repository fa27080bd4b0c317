// Command mesh-demo is `make demo` and `make demo-down`: it starts the
// sandbox cluster in .sandbox/ with the sandbox runtime beside it, walks the
// README's demo (demo.Walk: install, Bookinfo with sidecars, traffic rules,
// mTLS, proxy-status, proxy-config, analyze) printing each command a user
// would type, and leaves everything running to explore.
//
//	mesh-demo up       start the sandbox and the runtime, walk the demo; with
//	                   the demo already up, say how to use it instead
//	mesh-demo down     stop the runtime and the sandbox, remove .sandbox/, and
//	                   remove what a runtime that died left on the host
//	mesh-demo running  exit 0 when the demo is up (make demo asks before building)
//
// MESH_DEMO_STATE names another folder than .sandbox/ (the tests use it).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/demo"
	"mesh.dev/mesh/internal/sandbox/runtime"
)

const usage = `usage: mesh-demo up|down|running

  up       start the sandbox cluster and the sandbox runtime in .sandbox/, then walk the demo
  down     stop them, remove .sandbox/ and what a dead runtime left on the host
  running  exit 0 when the demo is up, 1 when not
`

func main() {
	if len(os.Args) != 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(64)
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mesh-demo:", err)
		os.Exit(1)
	}
	d := dirs{root: root, state: filepath.Join(root, ".sandbox"), bin: filepath.Join(root, "bin")}
	if s := os.Getenv("MESH_DEMO_STATE"); s != "" {
		d.state = s
	}
	switch os.Args[1] {
	case "up":
		err = up(d)
	case "down":
		err = down(os.Stdout, d)
	case "running":
		if _, _, err := sandbox.Running(d.state); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(64)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "\nmesh-demo:", err)
		os.Exit(1)
	}
}

type dirs struct{ root, state, bin string }

func (d dirs) runtimePID() string { return filepath.Join(d.state, "sandbox-runtime.pid") }
func (d dirs) runtimeLog() string { return filepath.Join(d.state, "logs", "sandbox-runtime.log") }

func up(d dirs) error {
	if err := runtime.CheckHost(); err != nil {
		return fmt.Errorf("%w\nthe demo runs pilot, the gateways and Bookinfo's pods as real processes, each in a network namespace of its own; run it as root (sudo make demo)", err)
	}
	if _, kubeconfig, err := sandbox.Running(d.state); err == nil {
		fmt.Printf("The demo is already up in %s (from an earlier make demo); it is not started again.\n", d.state)
		if !runtimeAlive(d) {
			fmt.Println("Its sandbox runtime is not running, so its pods are not either: `make demo-down` and `make demo` start afresh.")
		}
		printExplore(d, kubeconfig, "<the ingress gateway pod's IP>:8080/productpage")
		return nil
	}
	for _, b := range append([]string{"mesh", "sandbox-runtime"}, runtime.Binaries...) {
		if _, err := os.Stat(filepath.Join(d.bin, b)); err != nil {
			return fmt.Errorf("bin/%s missing: run `make demo` (it builds them)", b)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	fmt.Printf("==> Start the sandbox cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok) in %s\n", d.state)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	c, err := sandbox.Start(sctx, sandbox.Options{Dir: d.state, Detach: true, Logger: log})
	cancel()
	if err != nil {
		return err
	}
	fmt.Printf("    up at %s in %s\n", c.Server(), c.Timings().Ready.Round(100*time.Millisecond))

	fmt.Printf("==> Start the sandbox runtime: pods of the mesh's own images run as local processes (log: %s)\n", d.runtimeLog())
	node, err := startRuntime(ctx, d)
	if err != nil {
		return fmt.Errorf("%w\nthe sandbox is still running: `make demo-down` stops it", err)
	}
	fmt.Printf("    node %s\n", node)

	work := filepath.Join(d.state, "demo")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	w := &demo.Walk{Kubeconfig: c.KubeconfigPath(), Config: c.RESTConfig(), Bin: d.bin,
		Fixtures: filepath.Join(d.root, "..", "shared", "fixtures"), RuntimeNode: node, WorkDir: work, Out: os.Stdout}
	if err := w.Run(ctx); err != nil {
		return fmt.Errorf("%w\n\nThe sandbox is still running for a look (export KUBECONFIG=%s; container logs in %s); `make demo-down` stops it",
			err, c.KubeconfigPath(), filepath.Join(d.state, "logs", "pods"))
	}
	gw, _ := w.GatewayURL(ctx)
	fmt.Printf("\nThe demo is done and the sandbox keeps running, with the mesh and Bookinfo in it.\n")
	printExplore(d, c.KubeconfigPath(), gw)
	return nil
}

// printExplore says how to use the running demo.
func printExplore(d dirs, kubeconfig, gw string) {
	toolsBin, err := sandbox.FindBinDir()
	if err != nil {
		toolsBin = filepath.Join(d.root, "tools", "bin")
	}
	work := filepath.Join(d.state, "demo")
	fmt.Printf(`Explore it:

  export KUBECONFIG=%s
  export PATH=%s:%s:$PATH   # mesh, and the sandbox's own kubectl
  mesh proxy-status
  mesh proxy-config route $(kubectl get pod -n bookinfo -l app=productpage -o jsonpath='{.items[0].metadata.name}').bookinfo
  curl -s -H 'end-user: jason' %s | grep -o 'rating-error.*</p>'
  kubectl logs -n bookinfo deploy/reviews-v2 -c reviews
  kubectl exec -n bookinfo deploy/ratings-v1 -c ratings -- ip -4 addr show eth0
  kubectl apply -n bookinfo -f ../shared/fixtures/bookinfo/networking/virtual-service-all-v1.yaml

The manifests as applied are in %s, the containers' logs in %s.
Stop it all with: make demo-down
`, kubeconfig, d.bin, toolsBin, gw, work, filepath.Join(d.state, "logs", "pods"))
}

// runtimeAlive says whether the demo's sandbox runtime still runs.
func runtimeAlive(d dirs) bool {
	b, err := os.ReadFile(d.runtimePID())
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && isRuntime(pid)
}

// startRuntime runs bin/sandbox-runtime in a session of its own, so that it
// outlives `make demo`, and waits for it to be ready; it returns its node.
func startRuntime(ctx context.Context, d dirs) (string, error) {
	if err := os.MkdirAll(filepath.Dir(d.runtimeLog()), 0o755); err != nil {
		return "", err
	}
	logf, err := os.OpenFile(d.runtimeLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(d.bin, "sandbox-runtime"), "-dir", d.state, "-bin", d.bin)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	sandbox.CloseInheritedOnExec()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start the sandbox runtime: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := os.WriteFile(d.runtimePID(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return "", err
	}
	deadline := time.After(time.Minute)
	for {
		b, _ := os.ReadFile(d.runtimeLog())
		if i := strings.Index(string(b), "sandbox runtime on node "); i >= 0 {
			node, _, _ := strings.Cut(string(b[i+len("sandbox runtime on node "):]), ",")
			return node, nil
		}
		select {
		case err := <-exited:
			b, _ = os.ReadFile(d.runtimeLog()) // what it wrote before it exited
			return "", fmt.Errorf("the sandbox runtime exited (%v):\n%s", err, tail(b))
		case <-deadline:
			return "", fmt.Errorf("the sandbox runtime is not ready after a minute:\n%s", tail(b))
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

func down(w io.Writer, d dirs) error {
	if b, err := os.ReadFile(d.runtimePID()); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && isRuntime(pid) {
			fmt.Fprintf(w, "Stopping the sandbox runtime (pid %d): its pods, node, bridge and namespaces...\n", pid)
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && isRuntime(pid); {
				time.Sleep(200 * time.Millisecond)
			}
			if isRuntime(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && isRuntime(pid); {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			waitReleased(pid, 10*time.Second)
		}
		os.Remove(d.runtimePID())
	}
	// A runtime that was killed (or crashed) leaves its pods' processes,
	// namespaces and bridge behind: remove those of every runtime no longer alive.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	left := runtime.RemoveLeftovers(ctx)
	if len(left.Removed) > 0 {
		fmt.Fprintf(w, "Removed what dead sandbox runtimes left: %s.\n", strings.Join(left.Removed, ", "))
	}
	if left.RouteKept {
		fmt.Fprintf(w, "Kept the route unreachable 198.18.0.0/15: %d other sandbox runtimes (tests or another checkout's demo) use it.\n", left.Alive)
	}
	stopped, err := sandbox.StopDir(d.state)
	if sandbox.IsNotRunning(err) {
		os.RemoveAll(d.state)
		fmt.Fprintf(w, "No sandbox is running in %s.\n", d.state)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop the sandbox: %w", err)
	}
	fmt.Fprintf(w, "Stopped %v and removed %s.\n", stopped, d.state)
	return nil
}

// waitReleased waits until the exited process pid holds no descriptors. Its
// leader turns zombie, and drops its own view of the descriptor table, while
// its other threads still exit holding that shared table, the subnet lock
// among them; a subnet whose lock is held counts as alive and is left alone.
// So the leader's empty fd directory proves nothing: only the other threads
// being gone from its task directory does.
func waitReleased(pid int, within time.Duration) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil || !exiting(pid) {
			return // reaped (every thread gone), or not ours to wait for
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if len(tasks) <= 1 && len(fds) == 0 {
			return
		}
	}
}

// exiting says whether pid has begun to exit: a zombie leader, or one whose
// memory (and so its command line) is already released.
func exiting(pid int) bool {
	if zombie(pid) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(b) == 0
}

// zombie says whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The command name, in parentheses, may hold spaces: the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && strings.HasPrefix(string(stat[i+1:]), " Z")
}

// isRuntime says whether pid is still a sandbox-runtime process (not a
// recycled pid of something else).
func isRuntime(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	// A zombie has exited; its parent (gone with `make demo`) reaps it later.
	if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
		return false
	}
	return strings.Contains(string(b), "sandbox-runtime")
}
