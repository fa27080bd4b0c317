package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// probedApps are two Deployments of the sample app with HTTP readiness, TCP
// liveness and gRPC startup probes on the app's own ports, one of them opted
// out of the probe rewrite.
const probedApps = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations: {sidecar.istio.io/rewriteAppHTTPProbers: "%[2]s"}
    spec:
      containers:
      - name: app
        image: mesh.dev/mesh-sample:demo
        args: [--role=details, --grpc-health-listen=:9090]
        ports: [{name: http, containerPort: 9080}, {name: grpc, containerPort: 9090}]
        startupProbe: {grpc: {port: 9090}, periodSeconds: 1, failureThreshold: 60}
        livenessProbe: {tcpSocket: {port: 9080}, periodSeconds: 1, failureThreshold: 3}
        readinessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 1, failureThreshold: 1}
`

// TestProbesUnderStrictMTLS is the first-hour problem: an injected
// Deployment with an HTTP readiness probe on its own port, in a STRICT
// namespace. Rewritten to the sidecar's status port (the default), its
// probes pass and the pod becomes Ready while plaintext to the app port is
// refused; opted out, the same probe meets STRICT mTLS and the pod never
// becomes Ready.
func TestProbesUnderStrictMTLS(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	ctx := context.Background()
	if out, err := e.mesh(3*time.Minute, "install", "--set", "profile=demo", "-y", "--readiness-timeout", "60s"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	e.adopt("mesh-system", 0)
	const ns = "probes"
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"mesh-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e.apply(ns, []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\nspec:\n  mtls:\n    mode: STRICT\n"))
	e.apply(ns, []byte(fmt.Sprintf(probedApps, "rewritten", "true")+"---"+fmt.Sprintf(probedApps, "opted-out", "false")))

	var pod *corev1.Pod
	e.waitFor("the rewritten pod Ready on this runtime with its sidecar", 3*time.Minute, func() (bool, string) {
		pods, err := e.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=rewritten"})
		if err != nil || len(pods.Items) != 1 {
			return false, fmt.Sprintf("pods %v %v", len(pods.Items), err)
		}
		pod = &pods.Items[0]
		return pod.Spec.NodeName == e.rt.NodeName() && longRunning(pod) == 2 && podReady(pod),
			fmt.Sprintf("node %s containers %d ready %v status %+v", pod.Spec.NodeName, longRunning(pod), podReady(pod), pod.Status.ContainerStatuses)
	})
	app := e.container(pod, "app")
	for what, p := range map[string]*corev1.Probe{"readiness": app.ReadinessProbe, "liveness": app.LivenessProbe, "startup": app.StartupProbe} {
		if p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != 15020 {
			t.Errorf("%s probe %+v: want it rewritten to the status port", what, p.ProbeHandler)
		}
	}
	// STRICT is in force: the app port refuses what the kubelet would have sent.
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	refused := func(ip string) (bool, string) {
		resp, err := client.Get("http://" + ip + ":9080/health")
		if err != nil {
			return true, ""
		}
		resp.Body.Close()
		return false, fmt.Sprintf("plaintext answered %d", resp.StatusCode)
	}
	e.waitFor("plaintext to the rewritten pod's app port refused under STRICT", time.Minute, func() (bool, string) { return refused(pod.Status.PodIP) })
	out := e.pod(ns, "app=opted-out")
	e.waitFor("plaintext to the opted-out pod's app port refused under STRICT", time.Minute, func() (bool, string) {
		out = e.pod(ns, "app=opted-out")
		if out.Status.PodIP == "" {
			return false, "no pod IP yet"
		}
		return refused(out.Status.PodIP)
	})
	// With STRICT in force on both: the opted-out pod's probes meet it, the rewritten pod's do not.
	e.waitFor("the opted-out pod not Ready under STRICT", time.Minute, func() (bool, string) {
		out = e.pod(ns, "app=opted-out")
		return !podReady(out), fmt.Sprintf("Ready; status %+v", out.Status.ContainerStatuses)
	})
	if p := e.container(out, "app").ReadinessProbe; longRunning(out) != 2 || p.HTTPGet == nil || p.HTTPGet.Port.String() != "http" {
		t.Errorf("opted-out pod: containers %d, readiness %+v; want injected with its probe as written", longRunning(out), p)
	}
	pod = e.pod(ns, "app=rewritten")
	if st := e.containerStatus(pod, "app"); !podReady(pod) || st.RestartCount != 0 || !st.Ready {
		t.Errorf("rewritten pod under STRICT: Ready %v, app container %+v; want Ready, never restarted (liveness passing)", podReady(pod), st)
	}
}
