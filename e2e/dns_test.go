package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

// dnsDetails is the sample app's details behind a Service.
const dnsDetails = `
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
`

// dnsCaller, with DNS proxying and auto-allocation on, asks its DNS for
// the details Service's short name, then calls a ServiceEntry host no
// real DNS knows, on a TCP port, by name.
const dnsCaller = `
apiVersion: v1
kind: Pod
metadata:
  name: caller
  labels: {app: caller}
  annotations:
    proxy.istio.io/config: |
      proxyMetadata:
        ISTIO_META_DNS_CAPTURE: "true"
        ISTIO_META_DNS_AUTO_ALLOCATE: "true"
spec:
  restartPolicy: Never
  containers:
  - name: caller
    image: mesh.dev/mesh-sample:demo
    args: ["--resolve=details,legacy-details.internal", --fetch=http://legacy-details.internal:7070/details/1, --fetch-attempts=1]
`

// TestDNSProxyResolvesServiceEntryHosts: an injected pod with
// ISTIO_META_DNS_CAPTURE and ISTIO_META_DNS_AUTO_ALLOCATE, on the sandbox
// runtime with real processes: its DNS query for the details Service's
// short name is answered by its sidecar with the Service's ClusterIP
// (the sandbox runs no cluster DNS: the bridge the pod's resolv.conf
// names refuses every query), and a TCP ServiceEntry host without
// addresses, which no DNS knows, resolves to an address of 240.240.0.0/16
// that its sidecar routes to the ServiceEntry's endpoint: the one call,
// not retried, gets the details page.
func TestDNSProxyResolvesServiceEntryHosts(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	ctx := context.Background()
	if out, err := e.mesh(3*time.Minute, "install", "--set", "profile=demo", "-y", "--readiness-timeout", "60s"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	e.adopt("mesh-system", 0)
	const ns = "dnsproxy"
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"mesh-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e.apply(ns, []byte(dnsDetails))
	e.adopt(ns, 2)
	details := e.pod(ns, "app=details")
	svc, err := e.cs.CoreV1().Services(ns).Get(ctx, "details", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.apply(ns, []byte(fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy-details}
spec:
  hosts: [legacy-details.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: tcp, protocol: TCP, targetPort: 9080}]
  endpoints: [{address: %s}]
`, details.Status.PodIP)))
	e.apply(ns, []byte(dnsCaller))
	var pod *corev1.Pod
	e.waitFor("the caller pod finished", 3*time.Minute, func() (bool, string) {
		pod = e.podByName(ns, "caller")
		return pod != nil && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed), fmt.Sprint(pod.Status.Phase)
	})
	logs, err := e.cs.CoreV1().Pods(ns).GetLogs("caller", &corev1.PodLogOptions{Container: "caller"}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	out := string(logs)
	if pod.Status.Phase != corev1.PodSucceeded {
		e.dump()
		t.Fatalf("caller %s:\n%s", pod.Status.Phase, out)
	}
	if !strings.Contains(out, "details: "+svc.Spec.ClusterIP+"\n") {
		t.Errorf("the sidecar's DNS did not answer details with its ClusterIP %s:\n%s", svc.Spec.ClusterIP, out)
	}
	if !strings.Contains(out, "GET http://legacy-details.internal:7070/details/1: 200 OK") {
		t.Errorf("the ServiceEntry host was not reached by name:\n%s", out)
	}
	// Where the name took it: an auto-allocated address, which only the
	// sidecar's listener routes.
	_, after, _ := strings.Cut(out, "legacy-details.internal: ")
	addr, err := netip.ParseAddr(strings.TrimSpace(strings.SplitN(after, "\n", 2)[0]))
	if err != nil || !model.AutoAllocatePrefix.Contains(addr) {
		t.Errorf("legacy-details.internal resolved to %v (%v), want an address of %s:\n%s", addr, err, model.AutoAllocatePrefix, out)
	}
}
