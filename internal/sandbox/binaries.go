package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"mesh.dev/mesh/internal/freeport"
)

// BinEnv names the environment variable that points at a folder holding the
// sandbox binaries, instead of tools/bin in the repository.
const BinEnv = "MESH_SANDBOX_BIN"

// SkipEnv names the environment variable that, set to "skip", makes sandbox
// tests skip instead of starting a cluster (used by `make test-unit`).
const SkipEnv = "MESH_SANDBOX"

// Component names, as used in logs, errors and StartError.Component.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	Kwok              = "kwok"
)

// stagesFileName is the kwok Stage file `make tools` writes next to the binaries.
const stagesFileName = "kwok-stages.yaml"

// components lists the binaries a full sandbox runs, in start order.
var components = []string{Etcd, APIServer, ControllerManager, Scheduler, Kwok}

// FindBinDir returns the folder holding the sandbox binaries: $MESH_SANDBOX_BIN
// when set, otherwise tools/bin of the repository around the working directory.
func FindBinDir() (string, error) {
	if d := os.Getenv(BinEnv); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "tools", "bin"), nil
}

// RepoRoot walks up from the working directory to the folder holding tools/go.mod.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "tools", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no repository with tools/go.mod above %s; run inside the mesh repository or set %s", wd, BinEnv)
		}
		dir = parent
	}
}

// checkBinaries reports the first missing binary as a StartError naming its component.
func checkBinaries(binDir string, names []string) error {
	var missing []string
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(binDir, n)); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &StartError{
		Component: missing[0],
		Err:       fmt.Errorf("missing %s in %s", strings.Join(missing, ", "), binDir),
		Hint:      "run `make tools` in the repository root to build the sandbox binaries (a cold build takes several minutes), or set " + BinEnv + " to a folder that holds them",
	}
}

// freePorts picks n distinct free ports on 127.0.0.1 for the components
// to bind. freeport keeps them out of the range connections and port-0
// listeners draw from; another process may still bind one first, which the
// component's log then shows.
func freePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := freeport.Get()
		if err != nil {
			return nil, fmt.Errorf("pick ports for the sandbox: %w", err)
		}
		out[i] = p
	}
	return out, nil
}

var errNotRunning = errors.New("no sandbox is running there")
