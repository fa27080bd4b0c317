package status_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/crdschema"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/status"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

func installCRDs(t *testing.T, ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface) {
	t.Helper()
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
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		for _, gv := range []string{"networking.istio.io/v1", "security.istio.io/v1"} {
			if _, err := kube.Discovery().ServerResourcesForGroupVersion(gv); err != nil {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("Istio CRDs never served: %v", err)
	}
}

// replica is one pilot's watcher feeding its status writer.
func replica(t *testing.T, ctx context.Context, kube kubernetes.Interface, istio istioclient.Interface, id string) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	w := &status.Writer{Istio: istio, Kube: kube, Namespace: "mesh-system", Identity: id,
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond}
	watcher := &model.Watcher{Kube: kube, Istio: istio, RootNamespace: "mesh-system",
		OnSnapshot: func(s *model.Snapshot, _ model.Change) { w.Offer(s) }}
	done := make(chan struct{}, 2)
	go func() { _ = watcher.Run(ctx); done <- struct{}{} }()
	go func() { _ = w.Run(ctx); done <- struct{}{} }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// condition returns pilot's condition and whether the MSH0003 validation
// message is there.
func condition(ap *securityv1.AuthorizationPolicy) (string, bool) {
	msg := ""
	for _, c := range ap.Status.Conditions {
		if c.GetType() == status.ConditionType {
			msg = c.GetStatus() + " " + c.GetMessage()
		}
	}
	has := false
	for _, m := range ap.Status.ValidationMessages {
		if m.GetType().GetCode() == status.MessageCode {
			has = true
		}
	}
	return msg, has
}

// TestStatusWrittenAndCleared runs two pilot replicas' status writers on
// the sandbox API server: the leader writes, on an AuthorizationPolicy
// whose rule uses a condition key the mesh cannot translate, a validation message and a condition
// naming the field path; fixing the policy clears both; when the leader
// goes, the other replica takes the Lease and writes.
func TestStatusWrittenAndCleared(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	istio := istioclient.NewForConfigOrDie(c.RESTConfig())
	installCRDs(t, ctx, kube, dynamic.NewForConfigOrDie(c.RESTConfig()))
	for _, ns := range []string{"mesh-system", "shop"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	aps := istio.SecurityV1().AuthorizationPolicies("shop")
	// An experimental Envoy attribute: pilot does not translate it, so the
	// ALLOW rule allows nobody and the status says which field.
	badRule := &securityapi.Rule{When: []*securityapi.Condition{{Key: "experimental.envoy.filters.network.x[y]", Values: []string{"v"}}}}
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "jwt-only"}}
	ap.Spec.Rules = []*securityapi.Rule{badRule}
	if _, err := aps.Create(ctx, ap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	stopA := replica(t, ctx, kube, istio, "pilot-a")
	waitLeader(t, ctx, kube, "pilot-a")
	replica(t, ctx, kube, istio, "pilot-b")

	waitFor(t, ctx, "status written", func() (bool, string) {
		got, err := aps.Get(ctx, "jwt-only", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond, msg := condition(got)
		return msg && strings.HasPrefix(cond, "False ") && strings.Contains(cond, "spec.rules[0].when[0].key") &&
			got.Status.ObservedGeneration == got.Generation, cond
	})

	// Fixed: the rule names what the mesh enforces; pilot's parts go.
	fix := func(rule *securityapi.Rule) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			got, err := aps.Get(ctx, "jwt-only", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			got.Spec.Rules = []*securityapi.Rule{rule}
			_, err = aps.Update(ctx, got, metav1.UpdateOptions{})
			return err == nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	fix(&securityapi.Rule{From: []*securityapi.Rule_From{{Source: &securityapi.Source{ServiceAccounts: []string{"shop/cart"}}}}})
	waitFor(t, ctx, "status cleared", func() (bool, string) {
		got, err := aps.Get(ctx, "jwt-only", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond, msg := condition(got)
		return cond == "" && !msg, cond
	})

	// The leader leaves; the other replica takes over and writes.
	stopA()
	waitLeader(t, ctx, kube, "pilot-b")
	fix(badRule)
	waitFor(t, ctx, "status written by the new leader", func() (bool, string) {
		got, err := aps.Get(ctx, "jwt-only", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond, msg := condition(got)
		return msg && strings.Contains(cond, "spec.rules[0].when[0].key"), cond
	})
}

func waitLeader(t *testing.T, ctx context.Context, kube kubernetes.Interface, id string) {
	t.Helper()
	waitFor(t, ctx, id+" holds the status Lease", func() (bool, string) {
		l, err := kube.CoordinationV1().Leases("mesh-system").Get(ctx, "mesh-pilot-status", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		h := ""
		if l.Spec.HolderIdentity != nil {
			h = *l.Spec.HolderIdentity
		}
		return h == id, "holder " + h
	})
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 45*time.Second, true, func(context.Context) (bool, error) {
		ok, s := cond()
		last = s
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: never (last seen: %s)", what, last)
	}
}
