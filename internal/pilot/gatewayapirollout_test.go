package pilot_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/pilot/status"
)

// TestGatewayAPIRolloutCondition: a Gateway and an HTTPRoute with rollout
// annotations carry their rollout in their status as the Istio kinds do
// (mesh.io/RolloutReleased), where the Gateway API's status shape has
// room for it: among the Gateway's conditions, and in the HTTPRoute's
// parent entry of mesh's controller (a route has no conditions of its
// own). Created with stages, each is Progressing (False) until promoted
// by hand, then Released (True); the route's Accepted condition stays.
func TestGatewayAPIRolloutCondition(t *testing.T) {
	e := newEnv(t, 4*time.Minute)
	ctx, kube := e.ctx, e.kube
	gw := gwclient.NewForConfigOrDie(e.cfg)
	e.installGatewayAPICRDs()
	e.createNamespaces("gwro-system", "gwro-infra", "gwro-shop")
	e.startPilot(&pilot.Options{Namespace: "gwro-system", Revision: "gwro"})

	// A long soak: only the promote request moves the rollouts on.
	staged := map[string]string{rollout.AnnotationStages: "50,100", rollout.AnnotationInterval: "1h"}
	mustCreate := func(err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	_, err := gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "mesh.dev/gateway-controller"}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = gw.GatewayV1().Gateways("gwro-infra").Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: staged},
		Spec: gwv1.GatewaySpec{GatewayClassName: "mesh", Listeners: []gwv1.Listener{{
			Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType,
			AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}},
		}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Made while pilot runs, they are new changes and so staged (one pilot
	// finds at its start is taken as released): gone again at the end, for
	// the next run on the same cluster.
	t.Cleanup(func() {
		ctx := context.Background()
		_ = gw.GatewayV1().HTTPRoutes("gwro-shop").Delete(ctx, "cart", metav1.DeleteOptions{})
		_ = gw.GatewayV1().Gateways("gwro-infra").Delete(ctx, "web", metav1.DeleteOptions{})
	})
	_, err = kube.CoreV1().Services("gwro-shop").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "cart"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "cart"}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = gw.GatewayV1().HTTPRoutes("gwro-shop").Create(ctx, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "cart", Annotations: staged},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web", Namespace: ptr(gwv1.Namespace("gwro-infra"))}}},
			Rules: []gwv1.HTTPRouteRule{{
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "cart", Port: ptr(gwv1.PortNumber(9080))}}}},
			}},
		}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	condition := func(conds []metav1.Condition, typ string) string {
		if c := apimeta.FindStatusCondition(conds, typ); c != nil {
			return string(c.Status) + "/" + c.Reason
		}
		return ""
	}
	poll := func(what string, f func() (bool, string)) {
		t.Helper()
		var last string
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			ok, s := f()
			last = s
			return ok, nil
		}); err != nil {
			t.Fatalf("%s: last seen %s", what, last)
		}
	}
	gateway := func(want string) func() (bool, string) {
		return func() (bool, string) {
			g, err := gw.GatewayV1().Gateways("gwro-infra").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return condition(g.Status.Conditions, status.RolloutCondition) == want && condition(g.Status.Conditions, "Accepted") == "True/Accepted", js(g.Status)
		}
	}
	route := func(want string) func() (bool, string) {
		return func() (bool, string) {
			r, err := gw.GatewayV1().HTTPRoutes("gwro-shop").Get(ctx, "cart", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ps := r.Status.Parents
			return len(ps) == 1 && ps[0].ControllerName == "mesh.dev/gateway-controller" &&
				condition(ps[0].Conditions, "Accepted") == "True/Accepted" && condition(ps[0].Conditions, status.RolloutCondition) == want, js(r.Status)
		}
	}
	poll("Gateway's rollout Progressing in its conditions", gateway("False/Progressing"))
	poll("HTTPRoute's rollout Progressing in mesh's parent entry", route("False/Progressing"))

	promote := []byte(`{"metadata":{"annotations":{"` + rollout.AnnotationPromote + `":"1/all"}}}`)
	if _, err := gw.GatewayV1().Gateways("gwro-infra").Patch(ctx, "web", types.MergePatchType, promote, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.GatewayV1().HTTPRoutes("gwro-shop").Patch(ctx, "cart", types.MergePatchType, promote, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("Gateway released", gateway("True/Released"))
	poll("HTTPRoute released", route("True/Released"))
}
