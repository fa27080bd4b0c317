package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// imageName is the repository's last path element without tag or digest:
// "mesh.dev/mesh-proxy:1.0" → "mesh-proxy".
func imageName(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	name := path.Base(image)
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	return name
}

// commandLine maps a container's command and args to a local binary and its
// arguments. The images' entrypoint is their binary, so a command may only
// name that binary (by any path).
func commandLine(c corev1.Container, bin string, env map[string]string) ([]string, error) {
	argv := []string{bin}
	if len(c.Command) > 0 {
		if path.Base(c.Command[0]) != filepath.Base(bin) {
			return nil, fmt.Errorf("container %s: command %q: only the image's own binary %s can run in the sandbox",
				c.Name, c.Command[0], filepath.Base(bin))
		}
		argv = append(argv, c.Command[1:]...)
	}
	argv = append(argv, c.Args...)
	for i := 1; i < len(argv); i++ {
		argv[i] = expand(argv[i], env)
	}
	return argv, nil
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expand replaces $(VAR) with the container's variable as Kubernetes does;
// unknown references stay as written and $$ escapes a dollar.
func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// procState is what the runtime knows of one container.
type procState struct {
	spec     corev1.Container
	init     bool
	sidecar  bool // a native sidecar: an init container with restartPolicy Always
	cmd      *exec.Cmd
	pid      int // of the last process started; the container's binary once the exec chain is through
	done     chan struct{}
	started  time.Time
	exitCode int
	finished time.Time
	running  bool
	ready    bool
	// startupPassed: the startup probe passed (or there is none) for the
	// running process; liveness and readiness probes run only then.
	startupPassed bool
	restarts      int32
	waiting       string // reason while not running
	message       string
	lastTerm      *corev1.ContainerStateTerminated
	env           []string // the process's environment, for exec hooks
	hooking       bool     // its postStart hook is running: not Running yet, as the kubelet reports it
}

func (s *procState) status(image string) corev1.ContainerStatus {
	st := corev1.ContainerStatus{Name: s.spec.Name, Image: s.spec.Image, ImageID: image,
		ContainerID: containerID(s.pid), Ready: s.ready, RestartCount: s.restarts}
	started := s.running && s.startupPassed
	st.Started = &started
	switch {
	case s.running && s.hooking:
		st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating", Message: "postStart hook running"}
	case s.running:
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(s.started)}
	case !s.finished.IsZero() && s.waiting == "":
		st.State.Terminated = s.terminated()
	default:
		reason := s.waiting
		if reason == "" {
			reason = "ContainerCreating"
		}
		if s.init && reason == "ContainerCreating" {
			reason = "PodInitializing"
		}
		st.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: s.message}
		st.ContainerID = "" // no process now; the last one is in lastState
	}
	if s.lastTerm != nil {
		st.LastTerminationState.Terminated = s.lastTerm
	}
	return st
}

// terminated describes the container's last exit.
func (s *procState) terminated() *corev1.ContainerStateTerminated {
	return &corev1.ContainerStateTerminated{ExitCode: int32(s.exitCode), Reason: exitReason(s.exitCode),
		StartedAt: metav1.NewTime(s.started), FinishedAt: metav1.NewTime(s.finished), ContainerID: containerID(s.pid)}
}

// containerID names a container by the host PID of its process, so that
// whoever reads the pod's status can find it (`kill`, /proc/<pid>, nsenter);
// it changes with every restart, as a real runtime's IDs do.
func containerID(pid int) string {
	if pid == 0 {
		return ""
	}
	return "sandbox://" + strconv.Itoa(pid)
}

// PIDFromContainerID returns the host PID a runtime pod's containerID
// (sandbox://<pid>) names.
func PIDFromContainerID(id string) (int, error) {
	rest, ok := strings.CutPrefix(id, "sandbox://")
	pid, err := strconv.Atoi(rest)
	if !ok || err != nil || pid <= 0 {
		return 0, fmt.Errorf("container ID %q: want sandbox://<pid>, as the sandbox runtime reports it", id)
	}
	return pid, nil
}

func exitReason(code int) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// launchSpec is everything needed to start one container process.
type launchSpec struct {
	ns       string
	hostname string
	argv     []string
	env      []string
	uid, gid *int64
	logFile  string
	mounts   []mount
}

// The files a container's process chain runs after its volumes are mounted
// are opened on the host first and passed as these descriptors: a volume
// can then cover any folder, the checkout's bin/ or /usr/bin included,
// without hiding them (#25). The chain runs them through /proc/self/fd/N.
const (
	fdBinary  = 3 // the container's binary; stays open (read-only) in its process
	fdSetpriv = 4
	fdMount   = 5
	fdBash    = 6
)

// hostTools are the host's programs the chain runs once mounts may cover
// them, in descriptor order after the binary.
var hostTools = []string{"setpriv", "mount", "bash"}

// start runs the container in the pod's network namespace and a UTS
// namespace of its own (the pod name as host name), as the container's user.
// `ip netns exec` gives the process a mount namespace of its own, where bash
// (loaded before any mount) sets the host name, bind-mounts the volumes and
// execs the binary from its descriptor, keeping argv[0] as the binary's path.
func start(ls launchSpec) (*exec.Cmd, error) {
	files := make([]*os.File, 0, 1+len(hostTools))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	f, err := os.Open(ls.argv[0])
	if err != nil {
		return nil, fmt.Errorf("open the container's binary on the host: %w", err)
	}
	files = append(files, f)
	for _, tool := range hostTools {
		p, err := exec.LookPath(tool)
		if err != nil {
			return nil, fmt.Errorf("%s not found on the host: run tools/prereqs.sh", tool)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	bashPath, _ := exec.LookPath("bash")
	// Descriptors 4-6 are closed for the container; 3 cannot be, being what is executed.
	final := func(argv0 string) string {
		return fmt.Sprintf(`exec -a %s /proc/self/fd/%d "$@" %d<&- %d<&- %d<&-`, argv0, fdBinary, fdSetpriv, fdMount, fdBash)
	}
	// $1 is the host name, $2 the binary's path (argv[0]), then its arguments.
	script := `hostname "$1" && argv0=$2 && shift 2` + "\n" + mountScript(ls.mounts, fmt.Sprintf("/proc/self/fd/%d", fdMount))
	if ls.uid != nil || ls.gid != nil {
		script += fmt.Sprintf("exec /proc/self/fd/%d", fdSetpriv)
		if ls.uid != nil {
			script += " --reuid=" + strconv.FormatInt(*ls.uid, 10)
		}
		gid := ls.gid
		if gid == nil {
			gid = ls.uid
		}
		script += " --regid=" + strconv.FormatInt(*gid, 10) + " --clear-groups --"
		script += fmt.Sprintf(" /proc/self/fd/%d -c %s \"$argv0\" \"$@\"\n", fdBash, shellQuote(final(`"$0"`)))
	} else {
		script += final(`"$argv0"`) + "\n"
	}
	args := append([]string{"netns", "exec", ls.ns, "unshare", "--uts", "--", bashPath, "-c", script, "bash", ls.hostname}, ls.argv...)
	cmd := exec.Command("ip", args...)
	cmd.Env = ls.env
	cmd.Dir = "/"
	cmd.ExtraFiles = files
	logf, err := os.OpenFile(ls.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return nil, err
	}
	return cmd, nil
}

// stopProcess sends SIGTERM to the container's process group and SIGKILL
// after grace; done is closed when the process has been reaped.
func stopProcess(ctx context.Context, cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(grace):
	case <-ctx.Done():
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}
