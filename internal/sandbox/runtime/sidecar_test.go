package runtime_test

import (
	"context"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"mesh.dev/mesh/internal/sandbox/runtime"
)

// sidecarPod is a pod with one native sidecar (the sample app serving
// :9080, not ready for its first two seconds) and main.
func sidecarPod(name string, policy corev1.RestartPolicy, main corev1.Container) *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	health := corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromInt32(9080)}}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy: policy,
			InitContainers: []corev1.Container{{
				Name: "sidecar", Image: "mesh.dev/mesh-sample:test", RestartPolicy: &always,
				Args:           []string{"--role=details", "--unready-for=2s"},
				StartupProbe:   &corev1.Probe{ProbeHandler: health, PeriodSeconds: 1, FailureThreshold: 60},
				ReadinessProbe: &corev1.Probe{ProbeHandler: health, PeriodSeconds: 1},
			}},
			Containers: []corev1.Container{main},
		},
	}
}

// TestNativeSidecarsAsTheKubeletRunsThem: an init container with
// restartPolicy Always is started before the containers and waited for
// until its startup probe passes; it is restarted when it exits, even in a
// restartPolicy Never pod; and it is stopped after the main containers
// exit, so a batch pod completes.
func TestNativeSidecarsAsTheKubeletRunsThem(t *testing.T) {
	_, cs := startRuntime(t)
	ns := namespace(t, cs)
	ctx := context.Background()

	// The job asks the sidecar's /health once: it answers 200 only after its
	// startup probe can have passed, so success means the job started after that.
	job := corev1.Container{Name: "job", Image: "mesh.dev/mesh-sample:test", Args: []string{"--fetch=http://127.0.0.1:9080/health", "--fetch-attempts=1"}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, sidecarPod("job", corev1.RestartPolicyNever, job), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, ns, "job", "phase Succeeded or Failed", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded: the job's one request to the sidecar failed (started before the sidecar's startup probe passed?); status %+v", p.Status.Phase, p.Status.ContainerStatuses)
	}
	main, side := p.Status.ContainerStatuses[0], p.Status.InitContainerStatuses[0]
	if main.State.Terminated == nil || main.State.Terminated.ExitCode != 0 {
		t.Errorf("job container %+v, want terminated with 0", main.State)
	}
	if side.State.Terminated == nil {
		t.Fatalf("sidecar %+v after the pod completed, want terminated", side.State)
	}
	if side.State.Terminated.FinishedAt.Before(&main.State.Terminated.FinishedAt) {
		t.Errorf("sidecar finished at %v, before the job (%v): it must stop last", side.State.Terminated.FinishedAt, main.State.Terminated.FinishedAt)
	}
	if ready(p) {
		t.Error("a completed pod is Ready")
	}

	// A long-running main container: the sidecar is restarted when killed,
	// though the pod's restartPolicy is Never, and counts towards Ready.
	server := corev1.Container{Name: "app", Image: "mesh.dev/mesh-sample:test", Args: []string{"--role=ratings", "--listen=:9081"}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, sidecarPod("server", corev1.RestartPolicyNever, server), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, cs, ns, "server", "Ready", ready)
	side = p.Status.InitContainerStatuses[0]
	if !side.Ready || side.Started == nil || !*side.Started || side.State.Running == nil {
		t.Fatalf("Ready pod with sidecar %+v: want it running, started and ready", side)
	}
	pid, err := runtime.PIDFromContainerID(side.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, cs, ns, "server", "the killed sidecar restarted and the pod Ready again", func(p *corev1.Pod) bool {
		s := p.Status.InitContainerStatuses[0]
		return s.RestartCount == 1 && s.State.Running != nil && ready(p)
	})
	if st := p.Status.ContainerStatuses[0]; st.RestartCount != 0 || st.State.Running == nil {
		t.Errorf("app container %+v after the sidecar's restart, want still running, never restarted", st)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running", p.Status.Phase)
	}
}
