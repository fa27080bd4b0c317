package runtime_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPostStartHoldsTheNextContainer: as the kubelet, the runtime starts
// a pod's containers in order, each once the one before has started and
// its postStart hook has completed; this is how Istio's classic layout
// holds the app until its proxy is ready. The first container serves
// /health only after two seconds; its postStart hook waits for that; the
// second container asks /health once and exits with the answer, so it
// exits 0 only when it started after the hook. A failing postStart hook
// kills its container, which is restarted.
func TestPostStartHoldsTheNextContainer(t *testing.T) {
	_, cs := startRuntime(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	const health = "--fetch=http://127.0.0.1:9080/health"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "held"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "proxy", Image: "mesh.dev/mesh-sample:test", Args: []string{"--role=details", "--unready-for=2s"},
				Lifecycle: &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
					Command: []string{"mesh-sample", health, "--fetch-attempts=60"}}}},
			}, {
				Name: "app", Image: "mesh.dev/mesh-sample:test", Args: []string{health, "--fetch-attempts=1"},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, ns, "held", "the app container exited", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 2 && p.Status.ContainerStatuses[1].State.Terminated != nil
	})
	proxy, app := p.Status.ContainerStatuses[0], p.Status.ContainerStatuses[1]
	if app.State.Terminated.ExitCode != 0 {
		t.Fatalf("app exited %d: its one request to the first container failed, so it started before that container's postStart hook completed", app.State.Terminated.ExitCode)
	}
	if proxy.State.Running == nil || proxy.RestartCount != 0 {
		t.Errorf("first container %+v (restarts %d); want running, never restarted", proxy.State, proxy.RestartCount)
	}

	// A postStart hook that fails: the container is killed and restarted.
	fail := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "failing-hook"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "mesh.dev/mesh-sample:test", Args: []string{"--role=details"},
			Lifecycle: &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
				Command: []string{"mesh-sample", "--fetch=http://127.0.0.1:1/", "--fetch-attempts=1"}}}},
		}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, fail, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, ns, "failing-hook", "the container restarted after its failed postStart hook", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
}
