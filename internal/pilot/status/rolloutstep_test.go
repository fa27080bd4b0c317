package status_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"mesh.dev/mesh/internal/crdschema"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/pilot/status"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// TestRolloutStepWithoutChangeIsWritten: a rollout that steps while its
// resource does not change (a soak ending, a health gate failing) gets
// its new condition written. The writer's first write of each object
// (Progressing) is a status-only update, which makes no new snapshot,
// so the snapshot's copy is one resourceVersion behind and the next
// write on it (Released, on a Poke, as the rollout manager pokes after
// a step) is refused as a Conflict. Before the writer wrote again on the
// object as the API server has it, no Released was ever written until
// something else changed the resource. Every kind with Istio's status
// and a Gateway API Gateway are checked.
func TestRolloutStepWithoutChangeIsWritten(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	istio := istioclient.NewForConfigOrDie(c.RESTConfig())
	gw := gwclient.NewForConfigOrDie(c.RESTConfig())
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	installCRDs(t, ctx, kube, dyn)
	installGatewayAPICRDs(t, ctx, kube, dyn)
	const ns, name = "rollout-step", "one"
	for _, n := range []string{"mesh-system", ns} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}

	type target struct {
		id  string // the rollout ID the writer is told of
		get func() ([]metav1.Condition, error)
	}
	var targets []target
	for _, k := range model.Kinds {
		if k.Status == nil || k.Status.Istio == nil {
			continue
		}
		res := dyn.Resource(k.GVK.GroupVersion().WithResource(k.Plural)).Namespace(ns)
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": k.GVK.GroupVersion().String(), "kind": k.GVK.Kind,
			"metadata": map[string]any{"name": name}, "spec": map[string]any{},
		}}
		if _, err := res.Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s: %v", k, err)
		}
		targets = append(targets, target{id: k.AnalyzerKind + "/" + ns + "/" + name, get: func() ([]metav1.Condition, error) {
			u, err := res.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			var out []metav1.Condition
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				out = append(out, metav1.Condition{Type: fmt.Sprint(m["type"]), Status: metav1.ConditionStatus(fmt.Sprint(m["status"])), Reason: fmt.Sprint(m["reason"])})
			}
			return out, nil
		}})
	}
	if _, err := gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "mesh.dev/gateway-controller"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := gw.GatewayV1().Gateways(ns).Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gwv1.GatewaySpec{GatewayClassName: "mesh", Listeners: []gwv1.Listener{{Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType}}}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	targets = append(targets, target{id: "Gateway.gateway.networking.k8s.io/" + ns + "/" + name, get: func() ([]metav1.Condition, error) {
		g, err := gw.GatewayV1().Gateways(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return g.Status.Conditions, nil
	}})

	var mu sync.Mutex
	phase := rollout.Progressing
	rollouts := func() []rollout.Status {
		mu.Lock()
		defer mu.Unlock()
		var out []rollout.Status
		for _, tg := range targets {
			st := rollout.Status{ID: tg.id, Phase: phase, Generation: 1}
			if phase == rollout.Progressing {
				st.Stage, st.Stages, st.Affected, st.Staged = 1, []int{50, 100}, 2, []string{"sidecar~198.18.0.1~a.rollout-step~rollout-step.svc.cluster.local"}
			}
			out = append(out, st)
		}
		return out
	}
	ctx2, stop := context.WithCancel(ctx)
	w := &status.Writer{Istio: istio, GatewayAPI: gw, Dynamic: dyn, Kube: kube, Namespace: "mesh-system", Identity: "pilot-rollout-step",
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond, Rollouts: rollouts}
	watcher := &model.Watcher{Kube: kube, Istio: istio, GatewayAPI: gw, Dynamic: dyn, RootNamespace: "mesh-system",
		OnSnapshot: func(s *model.Snapshot, _ model.Change) { w.Offer(s) }}
	done := make(chan struct{}, 2)
	go func() { _ = watcher.Run(ctx2); done <- struct{}{} }()
	go func() { _ = w.Run(ctx2); done <- struct{}{} }()
	t.Cleanup(func() { stop(); <-done; <-done })

	every := func(want string) func() (bool, string) {
		return func() (bool, string) {
			var wrong []string
			for _, tg := range targets {
				conds, err := tg.get()
				if err != nil {
					wrong = append(wrong, tg.id+": "+err.Error())
					continue
				}
				got := ""
				for _, c := range conds {
					if c.Type == status.RolloutCondition {
						got = string(c.Status) + "/" + c.Reason
					}
				}
				if got != want {
					wrong = append(wrong, fmt.Sprintf("%s: %q", tg.id, got))
				}
			}
			return len(wrong) == 0, "want " + want + ": " + strings.Join(wrong, ", ")
		}
	}
	waitFor(t, ctx, "every object's rollout Progressing", every("False/Progressing"))

	// The rollout steps; nothing about the objects changes.
	mu.Lock()
	phase = rollout.Released
	mu.Unlock()
	w.Poke()
	waitFor(t, ctx, "every object's rollout Released without a change of the object", every("True/Released"))
}

// installGatewayAPICRDs installs the Gateway API's standard CRDs, as the
// base chart does.
func installGatewayAPICRDs(t *testing.T, ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface) {
	t.Helper()
	crds, err := crdschema.GatewayAPICRDs()
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, c := range crds {
		u := &unstructured.Unstructured{Object: c}
		if _, err := dyn.Resource(gvr).Create(ctx, u.DeepCopy(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", u.GetName(), err)
		}
	}
	waitFor(t, ctx, "gateway.networking.k8s.io/v1 served", func() (bool, string) {
		_, err := kube.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
		return err == nil, fmt.Sprint(err)
	})
}
