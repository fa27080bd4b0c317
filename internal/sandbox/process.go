package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one running component of the sandbox.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{} // closed when the process has exited
	err     error         // the exit status, valid once exited is closed
}

// launch starts a component in its own process group, logging to logDir/name.log.
// When detach is false the kernel kills the component if the process that started
// it dies, so a crashed or killed test binary leaves no cluster behind.
func launch(name, bin, logDir string, detach bool, args []string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	if _, err := os.Stat(bin); err != nil {
		return nil, &StartError{Component: name, LogPath: logPath, Err: fmt.Errorf("binary %s: %w", bin, err),
			Hint: "build the sandbox binaries with `make tools` (or point MESH_SANDBOX_BIN at a folder holding them)"}
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log for %s: %w", name, err)
	}
	fmt.Fprintf(lf, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.Stdin = nil
	cmd.Env = componentEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if detach {
		// A new session, so the component outlives the shell that ran `make sandbox-up`.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		CloseInheritedOnExec()
	} else {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := startCmd(cmd, detach); err != nil {
		lf.Close()
		return nil, &StartError{Component: name, LogPath: logPath, Err: err,
			Hint: "check that " + bin + " is an executable built by `make tools`"}
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: lf, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.exited)
	}()
	return p, nil
}

// The kernel sends Pdeathsig when the *thread* that forked the child exits, and
// the Go runtime may retire threads. So attached components are started from
// one goroutine locked to its thread for the life of the process.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startCmd(cmd *exec.Cmd, detach bool) error {
	if detach {
		return cmd.Start()
	}
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread must outlive the children
			for r := range spawnReqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// componentEnv keeps the caller's environment minus proxy settings: every
// component talks only to 127.0.0.1 and must never be routed elsewhere.
func componentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "KUBECONFIG":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// alive reports whether the process is still running.
func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop asks the process group to terminate and kills it after grace.
func (p *process) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
}

// failure builds the StartError for a component that exited or never became ready.
func (p *process) failure(err error, hint string) *StartError {
	if !p.alive() && p.err != nil {
		err = fmt.Errorf("%w (process exited: %v)", err, p.err)
	}
	tail := logTail(p.logPath, 20)
	if hint == "" {
		hint = hintFromLog(p.name, tail)
	}
	return &StartError{Component: p.name, LogPath: p.logPath, LogTail: tail, Err: err, Hint: hint}
}

// StartError says which component of the sandbox failed to start, shows the
// end of its log and what to do about it.
type StartError struct {
	Component string // etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
	LogPath   string
	LogTail   string
	Err       error
	Hint      string
}

func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sandbox: %s failed to start: %v", e.Component, e.Err)
	switch {
	case e.LogTail != "" && e.LogPath != "":
		fmt.Fprintf(&b, "\n--- last lines of %s ---\n%s\n---", e.LogPath, e.LogTail)
	case e.LogTail != "":
		fmt.Fprintf(&b, "\n--- last lines of the %s log ---\n%s\n---", e.Component, e.LogTail)
	case e.LogPath != "":
		fmt.Fprintf(&b, " (log: %s)", e.LogPath)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "\nwhat to do: %s", e.Hint)
	}
	return b.String()
}

func (e *StartError) Unwrap() error { return e.Err }

// hintFromLog recognises the usual reasons a component dies at start.
func hintFromLog(component, tail string) string {
	switch {
	case strings.Contains(tail, "address already in use"):
		return "a port the sandbox chose is taken by another process; free it (ss -ltnp shows who holds it) or leave the port option at 0 so a free one is picked"
	case strings.Contains(tail, "no space left on device"):
		return "the disk holding the sandbox folder is full; free space and retry"
	case strings.Contains(tail, "permission denied"):
		return "the sandbox folder or a binary is not accessible; check permissions"
	case component == "etcd":
		return "etcd stopped; look at its log above, remove the sandbox folder if its data is damaged, and retry"
	default:
		return "look at the log above; `make sandbox-down` and a retry clears leftover state"
	}
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxRead = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxRead {
		_, _ = f.Seek(st.Size()-maxRead, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// rssBytes reads the resident set size of a process from /proc.
func rssBytes(pid int) (int64, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS of pid %d: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}
