package runtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Container lifecycle hooks, run as the kubelet runs them: postStart right
// after the container's process starts, the next container of the pod
// waiting until it completes (the kubelet starts a pod's containers one
// after another, each after its postStart hook); a failed postStart kills
// the container, which is then restarted as its restartPolicy says.
// preStop runs before SIGTERM, within the grace period.

// runHook runs one handler for container s. exec runs the command in the
// container's namespaces with its environment (a command naming the
// image's own binary runs that binary; anything else is looked up on the
// host, whose files the container sees); httpGet asks the pod's address
// (or host) as a probe would; sleep waits. It returns the handler's error
// with what it printed.
func (w *podWorker) runHook(ctx context.Context, s *procState, h *corev1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		if len(h.Exec.Command) == 0 {
			return fmt.Errorf("exec hook without a command")
		}
		w.mu.Lock()
		pid, env := s.pid, s.env
		w.mu.Unlock()
		argv := append([]string(nil), h.Exec.Command...)
		if bin, ok := w.rt.binaryFor(s.spec.Image); ok && path.Base(argv[0]) == filepath.Base(bin) {
			argv[0] = bin
		}
		c := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", "-m", "-u", "--"}, argv...)...)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("command %q: %v: %s", h.Exec.Command, err, truncate(out, 512))
		}
		return nil
	case h.HTTPGet != nil:
		g := h.HTTPGet
		port, ok := resolvePort(s.spec, g.Port)
		if !ok {
			return fmt.Errorf("httpGet hook: port %s not found in container %s", g.Port.String(), s.spec.Name)
		}
		host := g.Host
		if host == "" {
			host = w.ip.String()
		}
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s:%d%s", scheme, host, port, g.Path), nil)
		if err != nil {
			return err
		}
		for _, hd := range g.HTTPHeaders {
			req.Header.Add(hd.Name, hd.Value)
		}
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // as the kubelet, which does not verify
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("httpGet hook: %v", err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("httpGet hook: %s: %s", resp.Status, body)
		}
		return nil
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		case <-ctx.Done():
		}
		return nil
	}
	return fmt.Errorf("hook has no handler (exec, httpGet or sleep)")
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// postStart runs s's postStart hook, if any, after its process started;
// false when it failed (the caller kills the container).
func (w *podWorker) postStart(ctx context.Context, s *procState) bool {
	lc := s.spec.Lifecycle
	if lc == nil || lc.PostStart == nil {
		return true
	}
	w.mu.Lock()
	s.hooking = true
	w.mu.Unlock()
	err := w.runHook(ctx, s, lc.PostStart)
	w.mu.Lock()
	s.hooking = false
	if err != nil {
		s.message = "PostStartHookError: " + err.Error()
	}
	w.mu.Unlock()
	if err != nil {
		w.rt.log.Warn("postStart hook failed; killing the container", "pod", w.key(), "container", s.spec.Name, "err", err)
		return false
	}
	return true
}

// preStop runs s's preStop hook, if any, before it is sent SIGTERM,
// bounded by the grace period as the kubelet bounds it.
func (w *podWorker) preStop(s *procState) {
	lc := s.spec.Lifecycle
	if lc == nil || lc.PreStop == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.grace())
	defer cancel()
	if err := w.runHook(ctx, s, lc.PreStop); err != nil {
		w.rt.log.Warn("preStop hook failed", "pod", w.key(), "container", s.spec.Name, "err", err)
	}
}
