package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// jobOnTheMesh is a Service of the sample app and a Job whose app init
// container and main container each call it once, without retrying.
const jobOnTheMesh = `
apiVersion: v1
kind: Service
metadata: {name: details}
spec:
  selector: {app: details}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: details}
spec:
  replicas: 1
  selector: {matchLabels: {app: details}}
  template:
    metadata: {labels: {app: details}}
    spec:
      containers:
      - name: details
        image: mesh.dev/mesh-sample:demo
        args: [--role=details]
        ports: [{name: http, containerPort: 9080}]
        readinessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 1}
---
apiVersion: batch/v1
kind: Job
metadata: {name: report}
spec:
  backoffLimit: 0
  template:
    metadata: {labels: {app: report}}
    spec:
      restartPolicy: Never
      initContainers:
      - name: warm-up
        image: mesh.dev/mesh-sample:demo
        args: [--fetch=http://details:9080/details/1, --fetch-attempts=1]
      containers:
      - name: report
        image: mesh.dev/mesh-sample:demo
        args: [--fetch=http://details:9080/details/2, --fetch-attempts=1]
`

// TestJobWithNativeSidecarCompletes: on the sandbox's Kubernetes (1.29 or
// later) an injected Job's proxy is a native sidecar. Under STRICT mTLS,
// where only the mesh reaches the Service, the app's own init container
// and then the Job's container each call it once and succeed (so the proxy
// was ready before either started), and the Job completes: the proxy stops
// after the Job's container exits instead of keeping the pod running.
func TestJobWithNativeSidecarCompletes(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	ctx := context.Background()
	if out, err := e.mesh(3*time.Minute, "install", "--set", "profile=demo", "-y", "--readiness-timeout", "60s"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	e.adopt("mesh-system", 0)
	const ns = "jobs"
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"mesh-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e.apply(ns, []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\nspec:\n  mtls:\n    mode: STRICT\n"))
	parts := strings.SplitN(jobOnTheMesh, "---\napiVersion: batch/v1", 2)
	e.apply(ns, []byte(parts[0]))
	e.adopt(ns, 2)
	e.apply(ns, []byte("apiVersion: batch/v1"+parts[1]))

	var job *batchv1.Job
	e.waitFor("the Job complete or failed", 3*time.Minute, func() (bool, string) {
		var err error
		job, err = e.cs.BatchV1().Jobs(ns).Get(ctx, "report", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range job.Status.Conditions {
			if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("active %d succeeded %d failed %d", job.Status.Active, job.Status.Succeeded, job.Status.Failed)
	})
	pod := e.pod(ns, "app=report")
	if job.Status.Succeeded != 1 {
		t.Fatalf("Job %+v, pod phase %s: want it complete (the init container's or the Job's one call failed, or the pod never finished)", job.Status, pod.Status.Phase)
	}
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Errorf("the Job's pod is %s, want Succeeded", pod.Status.Phase)
	}
	var inits []string
	for _, c := range pod.Spec.InitContainers {
		inits = append(inits, c.Name)
	}
	if got := strings.Join(inits, ","); got != "mesh-init,mesh-proxy,warm-up" || longRunning(pod) != 2 {
		t.Errorf("init containers %s (%d long-running containers): want the capture, the native sidecar, then the app's", got, longRunning(pod))
	}
	proxy, report := e.containerStatus(pod, "mesh-proxy"), e.containerStatus(pod, "report")
	if proxy.State.Terminated == nil || report.State.Terminated == nil || report.State.Terminated.ExitCode != 0 {
		t.Errorf("proxy %+v, report %+v: want both terminated, report with 0", proxy.State, report.State)
	} else if proxy.State.Terminated.FinishedAt.Before(&report.State.Terminated.FinishedAt) {
		t.Errorf("the proxy stopped (%v) before the Job's container (%v)", proxy.State.Terminated.FinishedAt, report.State.Terminated.FinishedAt)
	}
}

// heldPod, in the classic sidecar layout with
// holdApplicationUntilProxyStarts, asks its proxy's readiness once from
// the first moment of its first app container, and calls the details
// Service once from its second, neither retrying.
const heldPod = `
apiVersion: v1
kind: Pod
metadata:
  name: caller
  labels: {app: caller}
  annotations:
    sidecar.istio.io/nativeSidecar: "false"
    proxy.istio.io/config: |
      holdApplicationUntilProxyStarts: true
spec:
  restartPolicy: Never
  containers:
  - name: ready-check
    image: mesh.dev/mesh-sample:demo
    args: [--fetch=http://localhost:15021/healthz/ready, --fetch-attempts=1]
  - name: caller
    image: mesh.dev/mesh-sample:demo
    args: [--fetch=http://details:9080/details/3, --fetch-attempts=1]
`

// TestClassicLayoutHoldsTheApp: with native sidecars off, the pod's
// proxy.istio.io/config holdApplicationUntilProxyStarts makes the proxy the
// first container with a postStart hook (mesh-proxy wait) that the
// runtime, as the kubelet, lets finish before it starts the app: the app's
// first look at its proxy finds it ready (without the hold it finds it
// not ready yet), and under STRICT mTLS its single call succeeds.
func TestClassicLayoutHoldsTheApp(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	ctx := context.Background()
	if out, err := e.mesh(3*time.Minute, "install", "--set", "profile=demo", "-y", "--readiness-timeout", "60s"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	e.adopt("mesh-system", 0)
	const ns = "held"
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"mesh-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e.apply(ns, []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\nspec:\n  mtls:\n    mode: STRICT\n"))
	service := strings.SplitN(jobOnTheMesh, "---\napiVersion: batch/v1", 2)[0]
	e.apply(ns, []byte(service))
	e.adopt(ns, 2)
	e.apply(ns, []byte(heldPod))

	var pod *corev1.Pod
	e.waitFor("the caller container to exit", 3*time.Minute, func() (bool, string) {
		p, err := e.cs.CoreV1().Pods(ns).Get(ctx, "caller", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pod = p
		for _, s := range p.Status.ContainerStatuses {
			if s.Name == "caller" && s.State.Terminated != nil {
				return true, ""
			}
		}
		return false, fmt.Sprintf("phase %s, statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
	})
	if got := pod.Spec.Containers[0]; got.Name != "mesh-proxy" || got.Lifecycle == nil || got.Lifecycle.PostStart == nil || got.Lifecycle.PostStart.Exec == nil {
		t.Fatalf("first container %s with lifecycle %+v: want mesh-proxy with a postStart exec hook", got.Name, got.Lifecycle)
	}
	if c := e.containerStatus(pod, "ready-check"); c.State.Terminated == nil || c.State.Terminated.ExitCode != 0 {
		t.Errorf("the app's readiness check %+v: want exit 0 (the proxy was ready when the app started)", c.State)
	}
	if c := e.containerStatus(pod, "caller"); c.State.Terminated.ExitCode != 0 {
		t.Errorf("the app's one call exited %d: want 0 through the proxy under STRICT", c.State.Terminated.ExitCode)
	}
	if p := e.containerStatus(pod, "mesh-proxy"); p.RestartCount != 0 || p.State.Running == nil {
		t.Errorf("proxy %+v restarts %d: want running, never restarted (its postStart wait passed)", p.State, p.RestartCount)
	}
}
