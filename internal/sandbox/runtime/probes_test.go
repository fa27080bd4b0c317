package runtime_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"mesh.dev/mesh/internal/sandbox/sampleapp"
)

// TestProbesAsTheKubeletRunsThem: startup, liveness and readiness probes of
// each handler the kubelet has (HTTP, TCP, gRPC) decide Started, Ready and
// restarts as they do on a kubelet.
func TestProbesAsTheKubeletRunsThem(t *testing.T) {
	_, cs := startRuntime(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	svc, unknown := sampleapp.GRPCHealthService, "no.such.Service"
	probed := func(name string, startup, liveness, readiness corev1.ProbeHandler) *corev1.Pod {
		p := samplePod("details")
		p.GenerateName = name + "-"
		c := &p.Spec.Containers[0]
		c.Args = append(c.Args, "--grpc-health-listen=:9090")
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: "grpc", ContainerPort: 9090})
		c.StartupProbe = &corev1.Probe{ProbeHandler: startup, PeriodSeconds: 1, FailureThreshold: 30}
		c.LivenessProbe = &corev1.Probe{ProbeHandler: liveness, PeriodSeconds: 1, FailureThreshold: 2}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: readiness, PeriodSeconds: 1, FailureThreshold: 1}
		out, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	httpGet := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}}
	}
	tcp := corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9080)}}
	grpcProbe := func(service *string) corev1.ProbeHandler {
		return corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: service}}
	}

	healthy := probed("healthy", httpGet("/health"), grpcProbe(&svc), tcp)
	dying := probed("dying", tcp, httpGet("/not-here"), httpGet("/health"))              // 404: liveness fails
	unready := probed("unready", grpcProbe(nil), tcp, grpcProbe(&unknown))               // NOT_FOUND: never Ready
	neverStarts := probed("never-starts", httpGet("/not-here"), tcp, httpGet("/health")) // startup fails for 30 s

	h := waitPod(t, cs, ns, healthy.Name, "Ready with every probe passing", ready)
	if st := h.Status.ContainerStatuses[0]; st.Started == nil || !*st.Started || st.RestartCount != 0 {
		t.Errorf("healthy: started %v, restarts %d; want started, no restart", st.Started, st.RestartCount)
	}
	d := waitPod(t, cs, ns, dying.Name, "restarted by its failing liveness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if lt := d.Status.ContainerStatuses[0].LastTerminationState.Terminated; lt == nil {
		t.Errorf("dying: restarted without a last termination state: %+v", d.Status.ContainerStatuses[0])
	}
	// By now the unready pod has been probed for as long as the dying one took to fail twice, and the
	// pod that never starts has been running as long.
	u, err := cs.CoreV1().Pods(ns).Get(ctx, unready.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := u.Status.ContainerStatuses; ready(u) || len(st) != 1 || st[0].State.Running == nil || st[0].Started == nil || !*st[0].Started || st[0].RestartCount != 0 {
		t.Errorf("unready: Ready %v, status %+v; want started and running, not Ready, not restarted (its gRPC service is unknown, liveness passes)", ready(u), st)
	}
	n, err := cs.CoreV1().Pods(ns).Get(ctx, neverStarts.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := n.Status.ContainerStatuses; ready(n) || len(st) != 1 || st[0].State.Running == nil || (st[0].Started != nil && *st[0].Started) || st[0].RestartCount != 0 {
		t.Errorf("never-starts: Ready %v, status %+v; want running, not started (its startup probe fails), so no readiness or liveness yet", ready(n), st)
	}

	// As `kubectl describe` shows them: each failing probe is one Unhealthy
	// Event whose count grows, a restart by a probe a Killing Event, and a
	// passing pod has neither.
	events := func(p *corev1.Pod, reason string) []corev1.Event {
		l, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name + ",reason=" + reason})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	// The startup and liveness probes may fail too while the app binds its ports.
	readiness := func() (evs []corev1.Event) {
		for _, ev := range events(unready, "Unhealthy") {
			if strings.HasPrefix(ev.Message, "Readiness probe failed") {
				evs = append(evs, ev)
			}
		}
		return evs
	}
	var evs []corev1.Event
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if evs = readiness(); len(evs) != 1 || evs[0].Count >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(evs) != 1 || evs[0].Type != corev1.EventTypeWarning || evs[0].Count < 2 || !strings.Contains(evs[0].Message, "details") {
		t.Errorf("unready: Unhealthy events %+v; want one Warning naming the readiness probe and container, counted as it keeps failing", evs)
	}
	if evs := events(dying, "Killing"); len(evs) == 0 || !strings.Contains(evs[0].Message, "failed liveness probe") {
		t.Errorf("dying: Killing events %+v; want one saying the liveness probe failed", evs)
	}
	// Its startup probe may fail while the app is still binding its port.
	for _, ev := range append(events(healthy, "Unhealthy"), events(healthy, "Killing")...) {
		if !strings.HasPrefix(ev.Message, "Startup probe failed") {
			t.Errorf("healthy: event %s %q; want none but a startup probe's", ev.Reason, ev.Message)
		}
	}
}
