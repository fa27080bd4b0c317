package runtime

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// Streams idle longer than this are closed, as the kubelet's default does.
const (
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
)

// startKubelet serves, on 127.0.0.1, the part of the kubelet API the API
// server calls for a node's pods: containerLogs, portForward and exec. The
// node advertises its port as its kubelet endpoint. Only clients with a
// certificate from the sandbox CA (the API server's kubelet client) get in.
func (r *Runtime) startKubelet(o Options) error {
	cert, err := tls.X509KeyPair(o.WebhookCertPEM, o.WebhookKeyPEM)
	if err != nil {
		return fmt.Errorf("kubelet server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(o.CABundle) {
		return errors.New("kubelet server: no CA certificate in CABundle")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("kubelet server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", r.serveLogs)
	mux.HandleFunc("/portForward/{ns}/{pod}", r.servePortForward)
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", r.serveExec)
	r.kubeletSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}}
	r.kubeletPort = ln.Addr().(*net.TCPAddr).Port
	go func() {
		if err := r.kubeletSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Warn("kubelet server", "err", err)
		}
	}()
	return nil
}

// KubeletPort is the port of the runtime's kubelet API on 127.0.0.1.
func (r *Runtime) KubeletPort() int { return r.kubeletPort }

// workerFor finds the running pod namespace/name.
func (r *Runtime) workerFor(namespace, name string) *podWorker {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		if w.pod.Namespace == namespace && w.pod.Name == name {
			return w
		}
	}
	return nil
}

// pathNames checks the path's namespace, pod and container names, which
// become a file name, and finds the pod.
func (r *Runtime) pathNames(w http.ResponseWriter, req *http.Request, withContainer bool) (*podWorker, string, bool) {
	ns, pod, container := req.PathValue("ns"), req.PathValue("pod"), req.PathValue("container")
	names := []string{ns, pod}
	if withContainer {
		names = append(names, container)
	}
	for _, n := range names {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			http.Error(w, fmt.Sprintf("bad name %q: %v", n, errs), http.StatusBadRequest)
			return nil, "", false
		}
	}
	pw := r.workerFor(ns, pod)
	if pw == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s does not run on node %s", ns, pod, r.node), http.StatusNotFound)
		return nil, "", false
	}
	if withContainer && pw.proc(container) == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s has no container %q", ns, pod, container), http.StatusNotFound)
		return nil, "", false
	}
	return pw, container, true
}

// proc finds a container (init containers too) by name.
func (w *podWorker) proc(name string) *procState {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range append(append([]*procState(nil), w.inits...), w.conts...) {
		if s.spec.Name == name {
			return s
		}
	}
	return nil
}

// serveLogs writes a container's log file: tailLines and limitBytes as the
// kubelet reads them, follow until the client leaves or the pod stops.
// Restarts append to the same file, so previous=true is refused.
func (r *Runtime) serveLogs(w http.ResponseWriter, req *http.Request) {
	pw, container, ok := r.pathNames(w, req, true)
	if !ok {
		return
	}
	q := req.URL.Query()
	if q.Get("previous") == "true" {
		http.Error(w, "the sandbox runtime keeps one log per container across restarts: there are no previous logs apart", http.StatusBadRequest)
		return
	}
	var tail, limit int64 = -1, -1
	for name, dst := range map[string]*int64{"tailLines": &tail, "limitBytes": &limit} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				http.Error(w, fmt.Sprintf("%s=%q: want a whole number", name, v), http.StatusBadRequest)
				return
			}
			*dst = n
		}
	}
	f, err := os.Open(filepath.Join(r.logDir, fmt.Sprintf("%s_%s_%s.log", pw.pod.Namespace, pw.pod.Name, container)))
	if errors.Is(err, os.ErrNotExist) {
		w.Header().Set("Content-Type", "text/plain")
		return // not started yet: no output, as for a container that printed nothing
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if tail >= 0 {
		if err := seekTail(f, tail); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	var out io.Writer = w
	if limit >= 0 {
		out = &limitWriter{w: w, left: limit}
	}
	flusher, _ := w.(http.Flusher)
	follow := q.Get("follow") == "true"
	buf := make([]byte, 32*1024)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return
		}
		if !follow || r.workerFor(pw.pod.Namespace, pw.pod.Name) != pw {
			return
		}
		select {
		case <-req.Context().Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// Read backwards in blocks, counting newlines; a final newline ends the
	// last line rather than starting another.
	size := st.Size()
	pos, lines := size, int64(0)
	block := make([]byte, 8192)
	for pos > 0 {
		step := min(int64(len(block)), pos)
		pos -= step
		if _, err := f.ReadAt(block[:step], pos); err != nil {
			return err
		}
		for i := step - 1; i >= 0; i-- {
			if block[i] != '\n' || pos+i == size-1 {
				continue
			}
			lines++
			if lines == n {
				_, err := f.Seek(pos+i+1, io.SeekStart)
				return err
			}
		}
	}
	if n == 0 {
		_, err := f.Seek(size, io.SeekStart)
		return err
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// limitWriter stops the log after limitBytes, as the kubelet does.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	if err == nil && l.left <= 0 {
		err = io.EOF
	}
	return n, err
}

func (r *Runtime) servePortForward(w http.ResponseWriter, req *http.Request) {
	pw, _, ok := r.pathNames(w, req, false)
	if !ok {
		return
	}
	opts, err := portforward.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, req, podForwarder{pw}, pw.key(), string(pw.pod.UID), opts,
		streamIdleTimeout, streamCreationTimeout, []string{portforward.ProtocolV1Name})
}

// podForwarder connects a port-forward stream to 127.0.0.1:port inside the
// pod's network namespace, as a kubelet does: a proxy's admin port that
// listens on loopback only is reachable too.
type podForwarder struct{ w *podWorker }

// PortForward copies between stream and the pod's port until either side closes.
func (f podForwarder) PortForward(ctx context.Context, _ string, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	f.w.mu.Lock()
	pn := f.w.net
	f.w.mu.Unlock()
	if pn == nil {
		return fmt.Errorf("pod %s has no network", f.w.key())
	}
	conn, err := dialInNetNS(ctx, pn.ns, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("pod %s port %d: %w", f.w.key(), port, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(conn, stream); conn.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// dialInNetNS opens a TCP connection from inside the named network
// namespace: the socket is created while this OS thread is in it, and keeps
// belonging to it after the thread returns to the host's namespace.
func dialInNetNS(ctx context.Context, ns, addr string) (net.Conn, error) {
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return nil, err
	}
	defer target.Close()
	goruntime.LockOSThread()
	home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		goruntime.UnlockOSThread()
		return nil, err
	}
	defer home.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		goruntime.UnlockOSThread()
		return nil, fmt.Errorf("enter network namespace %s: %w", ns, err)
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	// The Go resolver is not involved (a literal address), and the connect
	// syscall happens on this thread before DialContext returns.
	conn, dialErr := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime retires it instead of reusing
		// it in the wrong namespace.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("leave network namespace %s: %w", ns, err)
	}
	goruntime.UnlockOSThread()
	return conn, dialErr
}

func (r *Runtime) serveExec(w http.ResponseWriter, req *http.Request) {
	pw, container, ok := r.pathNames(w, req, true)
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := req.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "exec: no command", http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(w, req, podExecutor{pw}, pw.key(), string(pw.pod.UID), container, cmd, opts,
		streamIdleTimeout, streamCreationTimeout,
		// The API server speaks SPDY to kubelets (it translates websocket
		// clients), and v5 exists only over websocket.
		[]string{remotecommand.StreamProtocolV4Name, remotecommand.StreamProtocolV3Name,
			remotecommand.StreamProtocolV2Name, remotecommand.StreamProtocolV1Name})
}

// podExecutor runs a command in a running container's namespaces (network,
// mount, UTS) with nsenter; it runs as root and without a terminal.
type podExecutor struct{ w *podWorker }

// ExecInContainer runs cmd in the container, its exit status as the kubelet reports it.
func (e podExecutor) ExecInContainer(ctx context.Context, _ string, _ string, container string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	s := e.w.proc(container)
	e.w.mu.Lock()
	pid := 0
	if s != nil && s.running && s.cmd != nil && s.cmd.Process != nil {
		pid = s.cmd.Process.Pid
	}
	e.w.mu.Unlock()
	if pid == 0 {
		return fmt.Errorf("container %s of pod %s is not running", container, e.w.key())
	}
	if tty {
		fmt.Fprintln(errOut, "the sandbox runtime runs exec without a terminal")
	}
	c := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", "-m", "-u", "--"}, cmd...)...)
	c.Stdin = in
	var stderr bytes.Buffer
	c.Stdout = out
	if errOut != nil {
		c.Stderr = errOut
	} else {
		c.Stderr = &stderr
	}
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{ee}
	}
	return err
}

// exitError gives an exit status the shape k8s.io/utils/exec.ExitError has,
// which ServeExec turns into the command's exit code for the client.
type exitError struct{ e *exec.ExitError }

func (x exitError) Error() string   { return x.e.Error() }
func (x exitError) String() string  { return x.e.String() }
func (x exitError) Exited() bool    { return x.e.Exited() }
func (x exitError) ExitStatus() int { return x.e.ExitCode() }
