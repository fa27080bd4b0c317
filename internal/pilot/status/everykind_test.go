package status_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/pilot/status"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// TestEveryStatusKindIsWritten: every row of pilot's kind table with
// Istio's status (model.Kinds, Status column) gets pilot's status written
// on the sandbox API server. One object of each such kind is created, and
// the writer is told each has a released rollout, a condition it writes
// on any kind (mesh.io/RolloutReleased True); a kind the writer skipped
// would keep no condition. (Before the writer read the table, its own
// list missed Telemetry, so a Telemetry's targetRef, not enforced, was
// never reported on the cluster.) The Gateway API's kinds are written
// from internal/gatewayapi's output; TestGatewayAPIStatusKinds covers
// their rows.
func TestEveryStatusKindIsWritten(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	istio := istioclient.NewForConfigOrDie(c.RESTConfig())
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	installCRDs(t, ctx, kube, dyn)
	waitFor(t, ctx, "telemetry.istio.io/v1 served", func() (bool, string) {
		_, err := kube.Discovery().ServerResourcesForGroupVersion("telemetry.istio.io/v1")
		return err == nil, fmt.Sprint(err)
	})
	const ns, name = "every-kind", "one"
	for _, n := range []string{"mesh-system", ns} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	var rows []*model.Kind
	var rollouts []rollout.Status
	for _, k := range model.Kinds {
		if k.Status == nil || k.Status.Istio == nil {
			continue
		}
		rows = append(rows, k)
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": k.GVK.GroupVersion().String(), "kind": k.GVK.Kind,
			"metadata": map[string]any{"name": name}, "spec": map[string]any{},
		}}
		if _, err := dyn.Resource(k.GVK.GroupVersion().WithResource(k.Plural)).Namespace(ns).Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s: %v", k, err)
		}
		rollouts = append(rollouts, rollout.Status{ID: k.AnalyzerKind + "/" + ns + "/" + name, Kind: k.AnalyzerKind, Namespace: ns, Name: name,
			Phase: rollout.Released, Generation: 1})
	}
	if len(rows) < 11 {
		t.Fatalf("%d kinds with Istio's status in model.Kinds; want the 9 Istio kinds, Telemetry and MetaRoute at least", len(rows))
	}

	ctx2, stop := context.WithCancel(ctx)
	w := &status.Writer{Istio: istio, Dynamic: dyn, Kube: kube, Namespace: "mesh-system", Identity: "pilot-every-kind",
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond,
		Rollouts: func() []rollout.Status { return rollouts }}
	watcher := &model.Watcher{Kube: kube, Istio: istio, Dynamic: dyn, RootNamespace: "mesh-system",
		OnSnapshot: func(s *model.Snapshot, _ model.Change) { w.Offer(s) }}
	done := make(chan struct{}, 2)
	go func() { _ = watcher.Run(ctx2); done <- struct{}{} }()
	go func() { _ = w.Run(ctx2); done <- struct{}{} }()
	t.Cleanup(func() { stop(); <-done; <-done })

	waitFor(t, ctx, "every kind's status written", func() (bool, string) {
		var missing []string
		for _, k := range rows {
			u, err := dyn.Resource(k.GVK.GroupVersion().WithResource(k.Plural)).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				missing = append(missing, k.String()+" ("+err.Error()+")")
				continue
			}
			ok := false
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				ok = ok || m["type"] == status.RolloutCondition && m["status"] == "True"
			}
			if !ok {
				missing = append(missing, k.String())
			}
		}
		return len(missing) == 0, "no " + status.RolloutCondition + " True on " + strings.Join(missing, ", ")
	})
}
