package runtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// maxPeriod caps a probe's period: the sandbox's tests should not wait
// Kubernetes' default 10 s between probes. Thresholds are counted as the
// kubelet counts them, so only the time to reach them shrinks.
const maxPeriod = 2 * time.Second

// probeKind is one of a container's three probes.
type probeKind int

const (
	startupProbe probeKind = iota
	livenessProbe
	readinessProbe
)

func (k probeKind) String() string { return [...]string{"Startup", "Liveness", "Readiness"}[k] }

func (k probeKind) of(c corev1.Container) *corev1.Probe {
	return [...]*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe}[k]
}

// prober is the kubelet's bookkeeping for one container process: it starts
// afresh with every restart.
type prober struct {
	started time.Time // the process start this is for
	next    [3]time.Time
	fails   [3]int32
	succ    [3]int32
	killed  bool // a failed liveness or startup probe is stopping the process
}

// probeLoop runs the containers' probes as the kubelet does, from the host
// to the pod address, until the pod stops: the startup probe first (liveness
// and readiness wait until it has passed; failureThreshold failures restart
// the container), then liveness (failureThreshold consecutive failures
// restart the container, by restartPolicy) and readiness (Ready after
// successThreshold consecutive successes, not Ready after failureThreshold
// failures). A container without a readiness probe is Ready once started.
func (w *podWorker) probeLoop(ctx context.Context) {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		// The kubelet follows redirects on the same host; a redirect elsewhere counts as success.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 || req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	probers := map[*procState]*prober{}
	for {
		now := time.Now()
		for _, s := range w.probed {
			w.mu.Lock()
			running, started := s.running, s.started
			w.mu.Unlock()
			if !running {
				continue
			}
			pr := probers[s]
			if pr == nil || !pr.started.Equal(started) {
				pr = &prober{started: started}
				probers[s] = pr
			}
			if pr.killed {
				continue
			}
			w.probeOnce(ctx, client, s, pr, now)
		}
		w.report(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// probeOnce runs the probes of one container that are due.
func (w *podWorker) probeOnce(ctx context.Context, client *http.Client, s *procState, pr *prober, now time.Time) {
	w.mu.Lock()
	startupPassed := s.startupPassed
	w.mu.Unlock()
	for _, k := range []probeKind{startupProbe, livenessProbe, readinessProbe} {
		p := k.of(s.spec)
		if k == startupProbe && startupPassed {
			continue
		}
		if k != startupProbe && !startupPassed {
			if s.spec.StartupProbe != nil {
				continue
			}
			w.mu.Lock()
			s.startupPassed, startupPassed = true, true
			w.mu.Unlock()
		}
		if p == nil {
			if k == readinessProbe {
				w.setReady(s, true)
			}
			continue
		}
		if now.Before(pr.started.Add(time.Duration(p.InitialDelaySeconds)*time.Second)) || now.Before(pr.next[k]) {
			continue
		}
		period := min(time.Duration(max(p.PeriodSeconds, 1))*time.Second, maxPeriod)
		pr.next[k] = now.Add(period)
		err := w.probe(ctx, client, s.spec, p)
		if err == nil {
			pr.fails[k] = 0
			pr.succ[k]++
		} else {
			pr.succ[k] = 0
			pr.fails[k]++
		}
		if pr.fails[k] > 0 {
			w.rt.log.Debug("probe failed", "pod", w.key(), "container", s.spec.Name, "probe", k, "failures", pr.fails[k], "err", err)
			ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
			w.event(ectx, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed (container %s): %v", k, s.spec.Name, err))
			cancel()
		}
		switch k {
		case startupProbe:
			if err == nil && pr.succ[k] >= 1 {
				w.mu.Lock()
				s.startupPassed, startupPassed = true, true
				w.mu.Unlock()
				continue
			}
			if pr.fails[k] >= threshold(p.FailureThreshold) {
				w.restartUnhealthy(s, pr, k, err)
				return
			}
		case livenessProbe:
			if pr.fails[k] >= threshold(p.FailureThreshold) {
				w.restartUnhealthy(s, pr, k, err)
				return
			}
		case readinessProbe:
			switch {
			case err == nil && pr.succ[k] >= max(p.SuccessThreshold, 1):
				w.setReady(s, true)
			case pr.fails[k] >= threshold(p.FailureThreshold):
				w.setReady(s, false)
			}
		}
	}
}

// defaultFailureThreshold is Kubernetes' default (3): the API server fills
// it in, a zero only comes from a pod built by hand.
const defaultFailureThreshold = 3

func threshold(n int32) int32 {
	if n <= 0 {
		return defaultFailureThreshold
	}
	return n
}

// restartUnhealthy stops a container whose liveness or startup probe failed;
// supervise then restarts it by restartPolicy, as the kubelet does.
func (w *podWorker) restartUnhealthy(s *procState, pr *prober, k probeKind, err error) {
	pr.killed = true
	w.rt.log.Info("container unhealthy: restarting it", "pod", w.key(), "container", s.spec.Name, "probe", k, "err", err)
	ectx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	w.event(ectx, corev1.EventTypeNormal, "Killing", fmt.Sprintf("Container %s failed %s probe, will be restarted", s.spec.Name, strings.ToLower(k.String())))
	cancel()
	w.mu.Lock()
	s.ready = false
	cmd, done := s.cmd, s.done
	w.mu.Unlock()
	grace := w.grace()
	if p := k.of(s.spec); p.TerminationGracePeriodSeconds != nil && time.Duration(*p.TerminationGracePeriodSeconds)*time.Second < grace {
		grace = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
	}
	go stopProcess(context.Background(), cmd, done, grace)
}

func (w *podWorker) setReady(s *procState, ready bool) {
	w.mu.Lock()
	s.ready = ready && s.running
	w.mu.Unlock()
}

// probe runs one probe from the host against the pod's address; nil means
// it passed.
func (w *podWorker) probe(ctx context.Context, client *http.Client, c corev1.Container, p *corev1.Probe) error {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := func(h string) string {
		if h != "" {
			return h
		}
		return w.ip.String()
	}
	switch {
	case p.HTTPGet != nil:
		port, ok := resolvePort(c, p.HTTPGet.Port)
		if !ok {
			return fmt.Errorf("port %s: not a port of the container", p.HTTPGet.Port.String())
		}
		scheme := "http"
		if p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host(p.HTTPGet.Host), strconv.Itoa(port)), p.HTTPGet.Path), nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/sandbox")
		req.Header.Set("Accept", "*/*")
		for _, h := range p.HTTPGet.HTTPHeaders {
			if h.Name == "Host" {
				req.Host = h.Value
				continue
			}
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		port, ok := resolvePort(c, p.TCPSocket.Port)
		if !ok {
			return fmt.Errorf("port %s: not a port of the container", p.TCPSocket.Port.String())
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host(p.TCPSocket.Host), strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case p.GRPC != nil:
		// The kubelet's gRPC probe: grpc.health.v1 Check, plaintext, SERVING passes.
		conn, err := grpc.NewClient(net.JoinHostPort(w.ip.String(), strconv.Itoa(int(p.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		svc := ""
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("service unhealthy (responded with %q)", resp.GetStatus())
		}
		return nil
	}
	// exec probes are not run here; they count as passing.
	return nil
}

func resolvePort(c corev1.Container, p intstr.IntOrString) (int, bool) {
	if p.Type == intstr.Int {
		return p.IntValue(), true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), true
		}
	}
	return 0, false
}
