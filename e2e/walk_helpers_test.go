package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/sandbox/runtime"
	"mesh.dev/mesh/internal/sandbox/sampleapp"
)

// meshOnBookinfo is the demo's state the resilience tests start from: the
// demo profile installed, injected Bookinfo with the gateway, destination
// rules, every service routed to v1 and STRICT mTLS in bookinfo.
type meshOnBookinfo struct {
	client *http.Client
	url    string // the product page through the ingress gateway
}

// bookinfoOnMesh brings the sandbox to that state and waits until the product
// page through the gateway shows reviews-v1 only. It also works in a sandbox
// an earlier test of the package (TestDemo) used: pods that its runtime no
// longer runs are deleted so that their controllers recreate them on this
// test's runtime, and the rules are applied again by the same field manager,
// replacing what the earlier test left.
func (e *env) bookinfoOnMesh() *meshOnBookinfo {
	e.t.Helper()
	ctx := context.Background()
	if out, err := e.mesh(3*time.Minute, "install", "--set", "profile=demo", "-y", "--readiness-timeout", "60s"); err != nil {
		e.t.Fatalf("install: %v\n%s", err, out)
	}
	e.adopt("mesh-system", 0)

	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo",
		Labels: map[string]string{"mesh-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(e.root, "..", "shared", "fixtures", "bookinfo", "bookinfo.yaml"))
	if err != nil {
		e.t.Fatal(err)
	}
	mapped, _, err := sampleapp.MapBookinfo(raw, "mesh.dev/mesh-sample:demo")
	if err != nil {
		e.t.Fatal(err)
	}
	e.apply("bookinfo", mapped)
	e.adopt("bookinfo", 2)

	for _, f := range []string{"bookinfo-gateway.yaml", "destination-rule-all.yaml", "virtual-service-all-v1.yaml"} {
		e.apply("bookinfo", e.fixture(f))
	}
	gw := e.pod("mesh-system", "app=mesh-ingressgateway")
	m := &meshOnBookinfo{
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}},
		url:    "http://" + gw.Status.PodIP + ":8080/productpage",
	}
	// Without the v1 rule reviews answers v1, v2 and v3 in turn: 20 pages
	// in a row of v1 by chance happen once in ~3.5 billion.
	streak := 0
	e.waitFor("every service routed to v1 (20 product pages in a row with reviews-v1)", 2*time.Minute, func() (bool, string) {
		v, err := reviewsVersion(m.client, m.url)
		if err != nil || v != "v1" {
			streak = 0
			return false, fmt.Sprintf("reviews %q, %v", v, err)
		}
		streak++
		return streak >= 20, fmt.Sprintf("%d in a row", streak)
	})

	e.apply("bookinfo", []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\nspec:\n  mtls:\n    mode: STRICT\n"))
	direct := "http://" + e.pod("bookinfo", "app=productpage").Status.PodIP + ":9080/productpage"
	e.waitFor("plaintext to productpage's pod refused under STRICT", time.Minute, func() (bool, string) {
		_, page, err := productPage(m.client, direct, "")
		return err != nil, "plaintext still served: " + page[:min(len(page), 200)]
	})
	return m
}

func (e *env) fixture(name string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, "..", "shared", "fixtures", "bookinfo", "networking", name))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// adopt deletes the namespace's pods that run elsewhere than on this test's
// runtime (left by an earlier test's runtime, or simulated by kwok after it
// stopped) or lack the containers wanted (created while the injector was
// away), and waits until every Deployment replica is a Ready pod on this
// runtime, each with containers containers when containers > 0.
func (e *env) adopt(ns string, containers int) {
	e.t.Helper()
	ctx := context.Background()
	zero := int64(0)
	evict := func(pods []corev1.Pod) {
		for _, p := range pods {
			elsewhere := p.Spec.NodeName != "" && p.Spec.NodeName != e.rt.NodeName()
			uninjected := containers > 0 && longRunning(&p) != containers
			if (elsewhere || uninjected) && p.DeletionTimestamp == nil {
				e.t.Logf("pod %s/%s on %s with %d containers is not what this test runs: deleting it for its controller to recreate", ns, p.Name, p.Spec.NodeName, longRunning(&p))
				if err := e.cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
					e.t.Fatal(err)
				}
			}
		}
	}
	e.waitFor("every replica in "+ns+" Ready on this runtime", 3*time.Minute, func() (bool, string) {
		deps, err := e.cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		want := 0
		for _, d := range deps.Items {
			if d.Spec.Replicas != nil {
				want += int(*d.Spec.Replicas)
			}
		}
		pods, err := e.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		// Also pods placed while this runtime was starting, or scheduled to kwok since.
		evict(pods.Items)
		var state []string
		got, ok := 0, want > 0
		for _, p := range pods.Items {
			good := p.Spec.NodeName == e.rt.NodeName() && podReady(&p) && (containers == 0 || longRunning(&p) == containers)
			if p.DeletionTimestamp == nil {
				got++
				ok = ok && good
			}
			state = append(state, fmt.Sprintf("%s node=%s ready=%v containers=%d", p.Name, p.Spec.NodeName, podReady(&p), longRunning(&p)))
		}
		return ok && got == want, fmt.Sprintf("want %d pods: %s", want, strings.Join(state, "; "))
	})
}

// pod returns the one live pod of ns matching selector.
func (e *env) pod(ns, selector string) *corev1.Pod {
	e.t.Helper()
	pods, err := e.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		e.t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		e.t.Fatalf("pods %s in %s: %d found, want 1", selector, ns, len(live))
	}
	return &live[0]
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// containerStatus returns the named container's status in p, failing the
// test when p has none.
// longRunning counts the containers that run for the pod's life, as
// kubectl's READY column does: native sidecars (the injected proxy on
// Kubernetes 1.29 or later) and the pod's containers.
func longRunning(p *corev1.Pod) int {
	n := len(p.Spec.Containers)
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			n++
		}
	}
	return n
}

// container finds a container of the pod's spec by name, init containers included.
func (e *env) container(p *corev1.Pod, name string) corev1.Container {
	e.t.Helper()
	for _, c := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	e.t.Fatalf("pod %s/%s has no container %s", p.Namespace, p.Name, name)
	return corev1.Container{}
}

func (e *env) containerStatus(p *corev1.Pod, name string) corev1.ContainerStatus {
	e.t.Helper()
	for _, s := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if s.Name == name {
			return s
		}
	}
	e.t.Fatalf("pod %s/%s has no status for container %s", p.Namespace, p.Name, name)
	return corev1.ContainerStatus{}
}

// kill sends SIGKILL to the process of container name in p, found as a user
// would: by the host PID in the containerID the runtime reports. It returns
// the container's restart count before the kill.
func (e *env) kill(p *corev1.Pod, name string) int32 {
	e.t.Helper()
	st := e.containerStatus(p, name)
	if st.State.Running == nil {
		e.t.Fatalf("container %s of %s/%s is not running: %+v", name, p.Namespace, p.Name, st.State)
	}
	pid, err := runtime.PIDFromContainerID(st.ContainerID)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("killing container %s of %s/%s: %s (restarts so far: %d)", name, p.Namespace, p.Name, st.ContainerID, st.RestartCount)
	proc, err := os.FindProcess(pid)
	if err == nil {
		err = proc.Kill()
	}
	if err != nil {
		e.t.Fatalf("kill %s: %v", st.ContainerID, err)
	}
	return st.RestartCount
}
