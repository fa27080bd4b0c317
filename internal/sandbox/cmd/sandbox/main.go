// Command sandbox starts and stops the local sandbox cluster for
// `make sandbox-up` and `make sandbox-down`. Its state lives in .sandbox/ at
// the repository root.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"mesh.dev/mesh/internal/sandbox"
)

const usage = `usage: sandbox up|down|status

  up      start the sandbox cluster in .sandbox/ and print how to use it
  down    stop it and remove .sandbox/
  status  say whether it runs and where its kubeconfig is
`

func main() {
	if len(os.Args) != 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(64)
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
	dir := filepath.Join(root, ".sandbox")
	switch os.Args[1] {
	case "up":
		err = up(os.Stdout, dir)
	case "down":
		err = down(os.Stdout, dir)
	case "status":
		err = status(os.Stdout, dir)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(64)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func up(w io.Writer, dir string) error {
	if _, kubeconfig, err := sandbox.Running(dir); err == nil {
		fmt.Fprintf(w, "The sandbox is already running.\n\n")
		printUse(w, kubeconfig)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := sandbox.Start(ctx, sandbox.Options{Dir: dir, Detach: true, Logger: log})
	if err != nil {
		return err
	}
	total, _, _ := c.MemoryRSS()
	fmt.Fprintf(w, "Sandbox cluster is up at %s (ready in %s, %d MiB resident).\n", c.Server(),
		c.Timings().Ready.Round(100*time.Millisecond), total>>20)
	fmt.Fprintf(w, "Nodes: %v. Pod IPs come from %s, Service IPs from %s.\n", c.Nodes(), sandbox.PodCIDR, sandbox.ServiceCIDR)
	fmt.Fprintf(w, "Logs: %s\n\n", c.LogDir())
	printUse(w, c.KubeconfigPath())
	return nil
}

// printUse also names the kubectl `make tools` built beside the cluster,
// since a fresh machine has none of its own.
func printUse(w io.Writer, kubeconfig string) {
	fmt.Fprintf(w, "Use it with:\n\n  export KUBECONFIG=%s\n", kubeconfig)
	if bin, err := sandbox.FindBinDir(); err == nil {
		fmt.Fprintf(w, "  export PATH=%s:$PATH   # the sandbox's own kubectl\n", bin)
	}
	fmt.Fprintf(w, "  kubectl get nodes\n\nStop it with `make sandbox-down`.\n")
}

func down(w io.Writer, dir string) error {
	stopped, err := sandbox.StopDir(dir)
	if sandbox.IsNotRunning(err) {
		fmt.Fprintf(w, "No sandbox is running in %s.\n", dir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("sandbox down: %w", err)
	}
	if len(stopped) == 0 {
		fmt.Fprintf(w, "The sandbox had already stopped; removed %s.\n", dir)
		return nil
	}
	fmt.Fprintf(w, "Stopped %v and removed %s.\n", stopped, dir)
	return nil
}

func status(w io.Writer, dir string) error {
	server, kubeconfig, err := sandbox.Running(dir)
	if errors.Is(err, os.ErrNotExist) || sandbox.IsNotRunning(err) {
		fmt.Fprintln(w, "The sandbox is not running; start it with `make sandbox-up`.")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "The sandbox is running at %s.\n\n", server)
	printUse(w, kubeconfig)
	return nil
}
