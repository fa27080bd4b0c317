// Package sandboxtest gives a test package one sandbox cluster, started in
// TestMain and torn down when the tests end, fail or are interrupted.
//
//	func TestMain(m *testing.M) { sandboxtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		c := sandboxtest.Cluster(t)
//		cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
//		...
//	}
//
// With MESH_SANDBOX=skip the sandbox is not started and Cluster skips the test.
package sandboxtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"mesh.dev/mesh/internal/sandbox"
)

var (
	mu       sync.Mutex
	cluster  *sandbox.Cluster
	startErr error
	skipped  bool
)

// Main starts one sandbox for the test package, runs the tests and stops the
// sandbox, also on SIGINT or SIGTERM. Call it from TestMain. Components die
// with the test binary even if it is killed outright (they get SIGKILL from
// the kernel), and a later run removes the folder such a kill leaves behind.
//
// A start failure does not abort the package: tests that call Cluster fail
// with the reason, and tests that do not need the sandbox still run.
func Main(m *testing.M) {
	os.Exit(run(m, sandbox.Options{}))
}

// MainWithOptions is Main with sandbox options, e.g. PortForwards or Nodes.
// The folder is always a temporary one and the components never detach.
func MainWithOptions(m *testing.M, o sandbox.Options) {
	o.Dir, o.Detach = "", false
	os.Exit(run(m, o))
}

func run(m *testing.M, o sandbox.Options) int {
	if os.Getenv(sandbox.SkipEnv) == "skip" {
		skipped = true
		return m.Run()
	}
	// Signals are caught from the start: one that arrives while the cluster
	// is still starting cancels the start, which then cleans up after itself.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "sandboxtest: %v: stopping the sandbox\n", s)
			cancel()
			<-started
			stop()
			os.Exit(130)
		case <-done:
		}
	}()
	if o.Logger == nil {
		o.Logger = logger()
	}
	if os.Getenv(KeepEnv) != "" {
		o.KeepDir = true
	}
	c, err := sandbox.Start(ctx, o)
	cancel()
	mu.Lock()
	cluster, startErr = c, err
	mu.Unlock()
	close(started)
	defer func() {
		close(done)
		signal.Stop(sigs)
		stop()
	}()
	return m.Run()
}

// KeepEnv names the environment variable that, when set, keeps the sandbox
// folder (certificates, kubeconfigs, component logs) after the tests.
const KeepEnv = "MESH_SANDBOX_KEEP"

func stop() {
	mu.Lock()
	defer mu.Unlock()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "sandboxtest: stop sandbox: %v\n", err)
		}
		if os.Getenv(KeepEnv) != "" {
			fmt.Fprintf(os.Stderr, "sandboxtest: %s is set: kept %s (logs in %s)\n", KeepEnv, cluster.Dir(), cluster.LogDir())
		}
	}
}

// logger reports start-up progress only in verbose runs (go test -v).
func logger() *slog.Logger {
	level := slog.LevelWarn
	for _, a := range os.Args {
		if a == "-test.v=true" || a == "-test.v" {
			level = slog.LevelInfo
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Cluster returns the package's sandbox. It skips the test when
// MESH_SANDBOX=skip, and fails it when the sandbox did not start or Main was
// not called from TestMain.
func Cluster(t testing.TB) *sandbox.Cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	switch {
	case skipped:
		t.Skipf("%s=skip: sandbox tests are skipped", sandbox.SkipEnv)
	case startErr != nil:
		t.Fatalf("the sandbox did not start:\n%v", startErr)
	case cluster == nil:
		t.Fatal("sandboxtest.Cluster: call sandboxtest.Main(m) from TestMain first")
	}
	return cluster
}
