package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	tempDirPrefix = "mesh-sandbox-"
	// ownerFile holds the pid of the process that created a temporary sandbox
	// folder, so a later run can remove folders whose owner was killed.
	ownerFile = "owner.pid"
)

// state is what a sandbox folder records about its running processes, so
// `make sandbox-down` (another process) can stop them.
type state struct {
	Server     string         `json:"server"`
	Kubeconfig string         `json:"kubeconfig"`
	Ports      ports          `json:"ports"`
	Processes  []stateProcess `json:"processes"`
}

type stateProcess struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	Bin  string `json:"bin"`
}

func (c *Cluster) writeState() error {
	st := state{Server: c.server, Kubeconfig: layout{c.dir}.kubeconfig(), Ports: c.ports}
	for _, p := range c.procs {
		st.Processes = append(st.Processes, stateProcess{Name: p.name, PID: p.cmd.Process.Pid, Bin: p.cmd.Path})
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(layout{c.dir}.state(), data, 0o644)
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(layout{dir}.state())
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNotRunning
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", layout{dir}.state(), err)
	}
	return &st, nil
}

// alive reports whether the recorded process still runs the recorded binary;
// the check on the binary keeps a reused pid from being signalled.
func (p stateProcess) alive() bool {
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.PID), "exe"))
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	if exe == p.Bin {
		return true
	}
	// The kernel names the file itself; Bin may reach it through a symlink
	// (a tools/bin linked from another checkout).
	bin, err := filepath.EvalSymlinks(p.Bin)
	return err == nil && exe == bin
}

func (s *state) anyAlive() bool {
	for _, p := range s.Processes {
		if p.alive() {
			return true
		}
	}
	return false
}

// Running describes a sandbox started in dir by another process, or returns
// an error when none runs there.
func Running(dir string) (server, kubeconfig string, err error) {
	st, err := readState(dir)
	if err != nil {
		return "", "", err
	}
	if !st.anyAlive() {
		return "", "", errNotRunning
	}
	return st.Server, st.Kubeconfig, nil
}

// IsNotRunning reports whether err says no sandbox runs in a folder.
func IsNotRunning(err error) bool { return errors.Is(err, errNotRunning) }

// StopDir stops a sandbox started in dir by another process (the counterpart
// of Start with Options.Detach) and removes the folder. It returns the names
// of the components it stopped.
func StopDir(dir string) ([]string, error) {
	st, err := readState(dir)
	if err != nil {
		return nil, err
	}
	var stopped []string
	for i := len(st.Processes) - 1; i >= 0; i-- {
		p := st.Processes[i]
		if !p.alive() {
			continue
		}
		_ = syscall.Kill(-p.PID, syscall.SIGTERM)
		deadline := time.Now().Add(10 * time.Second)
		for p.alive() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if p.alive() {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
			for p.alive() {
				time.Sleep(50 * time.Millisecond)
			}
		}
		stopped = append(stopped, p.Name)
	}
	if err := os.RemoveAll(dir); err != nil {
		return stopped, fmt.Errorf("remove %s: %w", dir, err)
	}
	return stopped, nil
}

// cleanStaleTempDirs removes temporary sandbox folders whose creating process
// is gone (killed before it could clean up), stopping anything still running
// from them first.
func cleanStaleTempDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempDirPrefix+"*"))
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // owner still running
		}
		if _, err := StopDir(d); err != nil {
			_ = os.RemoveAll(d)
		}
	}
}
