// Package livepilot runs mesh-pilot inside a test against a real API
// server (a sandbox cluster): the base chart's CRDs, pilot's namespace and
// injector values made, pilot started on loopback ports and stopped when
// the test ends. For tests of what reaches pilot through the Kubernetes
// API (rollout requests, status, leader election).
package livepilot

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"mesh.dev/mesh/internal/crdschema"
	"mesh.dev/mesh/internal/pilot"
)

// Namespace is where the pilots run.
const Namespace = "mesh-system"

// Prepare installs the base chart's CRDs (waiting until the Istio groups
// are served) and makes pilot's namespace and injector ConfigMap; running
// it again is harmless.
func Prepare(t *testing.T, ctx context.Context, cfg *rest.Config) {
	t.Helper()
	kube := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range crdschema.All() {
		raw, err := json.Marshal(map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": crd.Name()}, "spec": crd.Object(),
		})
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(raw, &u.Object); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(gvr).Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", crd.Name(), err)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		for _, gv := range []string{"networking.istio.io/v1", "security.istio.io/v1"} {
			if _, err := kube.Discovery().ServerResourcesForGroupVersion(gv); err != nil {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("Istio CRDs never served: %v", err)
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().ConfigMaps(Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh-sidecar-injector"},
		Data:       map[string]string{"values": "proxyImage: mesh/proxy:test\ndiscoveryAddress: mesh-pilot.mesh-system.svc:15012\n"},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// Pilot is one running mesh-pilot.
type Pilot struct {
	*pilot.Options
	// Debug is its debug server's host:port.
	Debug string

	cancel context.CancelFunc
	done   chan error
	t      *testing.T
}

// Start runs a pilot with the kubeconfig at path on loopback ports and
// waits until it is ready; it stops when the test ends (or at Stop).
// edit, when given, changes the options before the start.
func Start(t *testing.T, ctx context.Context, kubeconfig string, edit func(*pilot.Options)) *Pilot {
	t.Helper()
	o := &pilot.Options{
		Kubeconfig: kubeconfig, Namespace: Namespace,
		XDSAddr: "127.0.0.1:0", SecureXDSAddr: "127.0.0.1:0", DebugAddr: "127.0.0.1:0", WebhookAddr: "127.0.0.1:0",
		ExtraHosts: []string{"127.0.0.1"},
	}
	if edit != nil {
		edit(o)
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &Pilot{Options: o, cancel: cancel, done: make(chan error, 1), t: t}
	go func() { p.done <- o.Run(pctx) }()
	t.Cleanup(p.Stop)
	dbg, err := o.Addr(ctx, "debug")
	if err != nil {
		t.Fatal(err)
	}
	p.Debug = dbg.String()
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		resp, err := http.Get("http://" + p.Debug + "/ready")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("pilot never became ready: %v", err)
	}
	return p
}

// Stop ends the pilot and waits for it; a second call does nothing.
func (p *Pilot) Stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	if err := <-p.done; err != nil {
		p.t.Errorf("pilot exited with %v", err)
	}
}
