package pilot_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"mesh.dev/mesh/internal/crdschema"
	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// installGatewayAPICRDs creates the Gateway API CRDs the base chart ships.
func (e *env) installGatewayAPICRDs() {
	crds, err := crdschema.GatewayAPICRDs()
	if err != nil {
		e.t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, c := range crds {
		u := &unstructured.Unstructured{Object: c}
		if _, err := e.dyn.Resource(gvr).Create(e.ctx, u.DeepCopy(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			e.t.Fatalf("create CRD %s: %v", u.GetName(), err)
		}
	}
	if err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.kube.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
		return err == nil, nil
	}); err != nil {
		e.t.Fatalf("Gateway API CRDs never served: %v", err)
	}
	e.rm.Reset()
}

// TestGatewayAPIOnTheAPIServer: pilot, on a real API server with the
// Gateway API CRDs, accepts GatewayClass mesh, programs a Gateway once its
// Service exists, writes route status, and serves the Gateway's listener
// and routes to the gateway pod over a real ADS stream.
func TestGatewayAPIOnTheAPIServer(t *testing.T) {
	e := newEnv(t, 4*time.Minute)
	ctx, kube := e.ctx, e.kube
	gw := gwclient.NewForConfigOrDie(e.cfg)
	e.installGatewayAPICRDs()
	e.createNamespaces("gwapi-system", "infra", "shop")
	p := e.startPilot(&pilot.Options{Namespace: "gwapi-system", Revision: "gwapi"})

	mustCreate := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "mesh.dev/gateway-controller"}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = gw.GatewayV1().Gateways("infra").Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: gwv1.GatewaySpec{GatewayClassName: "mesh", Listeners: []gwv1.Listener{{
			Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType,
			AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}},
		}}}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = kube.CoreV1().Services("shop").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "cart"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "cart"}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = gw.GatewayV1().HTTPRoutes("shop").Create(ctx, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "cart"},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web", Namespace: ptr(gwv1.Namespace("infra"))}}},
			Hostnames:       []gwv1.Hostname{"shop.example.com"},
			Rules: []gwv1.HTTPRouteRule{{
				Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/cart")}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "cart", Port: ptr(gwv1.PortNumber(9080))}}}},
			}},
		}}, metav1.CreateOptions{})
	mustCreate(err)

	condition := func(conds []metav1.Condition, typ string) string {
		if c := apimeta.FindStatusCondition(conds, typ); c != nil {
			return string(c.Status) + "/" + c.Reason
		}
		return ""
	}
	poll := func(what string, f func() (bool, string)) {
		t.Helper()
		var last string
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			ok, s := f()
			last = s
			return ok, nil
		}); err != nil {
			t.Fatalf("%s: last seen %s", what, last)
		}
	}
	poll("GatewayClass mesh Accepted", func() (bool, string) {
		gc, err := gw.GatewayV1().GatewayClasses().Get(ctx, "mesh", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return condition(gc.Status.Conditions, "Accepted") == "True/Accepted" && len(gc.Status.SupportedFeatures) > 0, js(gc.Status)
	})
	poll("Gateway waits for its Service", func() (bool, string) {
		g, err := gw.GatewayV1().Gateways("infra").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return condition(g.Status.Conditions, "Accepted") == "True/Accepted" && condition(g.Status.Conditions, "Programmed") == "False/NoResources", js(g.Status)
	})
	poll("HTTPRoute accepted by the Gateway", func() (bool, string) {
		r, err := gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "cart", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ps := r.Status.Parents
		return len(ps) == 1 && ps[0].ControllerName == "mesh.dev/gateway-controller" &&
			condition(ps[0].Conditions, "Accepted") == "True/Accepted" && condition(ps[0].Conditions, "ResolvedRefs") == "True/ResolvedRefs", js(r.Status)
	})

	// The Gateway's Service and pod (what the automated deployment makes).
	svc, err := kube.CoreV1().Services("infra").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-mesh"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"gateway.networking.k8s.io/gateway-name": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}, metav1.CreateOptions{})
	mustCreate(err)
	poll("Gateway Programmed with the Service's address", func() (bool, string) {
		g, err := gw.GatewayV1().Gateways("infra").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return condition(g.Status.Conditions, "Programmed") == "True/Programmed" && len(g.Status.Addresses) == 1 &&
			g.Status.Addresses[0].Value == svc.Spec.ClusterIP && len(g.Status.Listeners) == 1 && g.Status.Listeners[0].AttachedRoutes == 1, js(g.Status)
	})

	one := int32(1)
	lbls := map[string]string{"gateway.networking.k8s.io/gateway-name": "web"}
	_, err = kube.AppsV1().Deployments("infra").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web-mesh"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "mesh/proxy:test"}}}}}}, metav1.CreateOptions{})
	mustCreate(err)
	var node string
	poll("gateway pod with an IP", func() (bool, string) {
		pods, err := kube.CoreV1().Pods("infra").List(ctx, metav1.ListOptions{LabelSelector: "gateway.networking.k8s.io/gateway-name=web"})
		if err != nil || len(pods.Items) == 0 || pods.Items[0].Status.PodIP == "" {
			return false, "no pod"
		}
		pod := pods.Items[0]
		node = model.NodeID(model.Router, pod.Status.PodIP, pod.Name, pod.Namespace)
		return true, ""
	})
	addr, _ := p.Addr(ctx, "xds")
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := &pilottest.ADSClient{NodeID: node}
	if err := client.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
		r := c.Resource(resourcev3.RouteType, "http.8080")
		return c.Resource(resourcev3.ListenerType, "0.0.0.0_8080") != nil && r != nil &&
			strings.Contains(string(r.Value), "shop.example.com") && strings.Contains(string(r.Value), "/cart/") &&
			strings.Contains(string(r.Value), "outbound|9080||cart.shop.svc.cluster.local")
	}); err != nil {
		t.Fatalf("the gateway pod never got listener 0.0.0.0_8080 with the HTTPRoute's routes: %v", err)
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// TestGAMMARoutesReachSidecars: on a real API server, an HTTPRoute
// attached to a Service (a producer route in its namespace, and a consumer
// route in a client namespace) is accepted by mesh's controller, and the
// sidecars' route tables over real ADS streams carry it for that
// Service's host: the producer route for clients elsewhere, the consumer
// route for clients in its own namespace alone.
func TestGAMMARoutesReachSidecars(t *testing.T) {
	e := newEnv(t, 4*time.Minute)
	ctx, kube := e.ctx, e.kube
	gw := gwclient.NewForConfigOrDie(e.cfg)
	e.installGatewayAPICRDs()
	e.createNamespaces("gamma-system", "echo", "consumer", "elsewhere")
	p := e.startPilot(&pilot.Options{Namespace: "gamma-system", Revision: "gamma"})

	mustCreate := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := kube.CoreV1().Services("echo").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "echo"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{})
	mustCreate(err)
	route := func(ns, name string, parentNS *gwv1.Namespace) *gwv1.HTTPRoute {
		return &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
					Group: ptr(gwv1.Group("")), Kind: ptr(gwv1.Kind("Service")), Name: "echo", Namespace: parentNS}}},
				Rules: []gwv1.HTTPRouteRule{{
					Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterResponseHeaderModifier,
						ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Set-By", Value: name + "-route"}}}}},
					BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
						Name: "echo", Namespace: ptr(gwv1.Namespace("echo")), Port: ptr(gwv1.PortNumber(80))}}}},
				}},
			}}
	}
	_, err = gw.GatewayV1().HTTPRoutes("echo").Create(ctx, route("echo", "producer", nil), metav1.CreateOptions{})
	mustCreate(err)
	_, err = gw.GatewayV1().HTTPRoutes("consumer").Create(ctx, route("consumer", "consumer", ptr(gwv1.Namespace("echo"))), metav1.CreateOptions{})
	mustCreate(err)

	for _, r := range []struct{ ns, name string }{{"echo", "producer"}, {"consumer", "consumer"}} {
		var last string
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			got, err := gw.GatewayV1().HTTPRoutes(r.ns).Get(ctx, r.name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			last = js(got.Status)
			ps := got.Status.Parents
			if len(ps) != 1 || ps[0].ControllerName != "mesh.dev/gateway-controller" {
				return false, nil
			}
			a, rr := apimeta.FindStatusCondition(ps[0].Conditions, "Accepted"), apimeta.FindStatusCondition(ps[0].Conditions, "ResolvedRefs")
			return a != nil && a.Status == metav1.ConditionTrue && rr != nil && rr.Status == metav1.ConditionTrue, nil
		}); err != nil {
			t.Fatalf("HTTPRoute %s/%s on Service echo/echo never Accepted and ResolvedRefs by mesh: last status %s", r.ns, r.name, last)
		}
	}

	addr, _ := p.Addr(ctx, "xds")
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	routesOf := func(c *pilottest.ADSClient) string {
		if r := c.Resource(resourcev3.RouteType, "80"); r != nil {
			return string(r.Value)
		}
		return ""
	}
	for _, tc := range []struct{ ns, want, not string }{
		{"consumer", "consumer-route", "producer-route"},
		{"elsewhere", "producer-route", "consumer-route"},
	} {
		client := &pilottest.ADSClient{NodeID: model.NodeID(model.SidecarProxy, "198.18.252.4", "app-0", tc.ns)}
		if err := client.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
			r := routesOf(c)
			return strings.Contains(r, "echo.echo.svc.cluster.local") && strings.Contains(r, tc.want) && !strings.Contains(r, tc.not)
		})
		wcancel()
		if err != nil {
			t.Errorf("a sidecar in namespace %s never got route 80 with the %s's header for echo (and not the %s's): %q: %v", tc.ns, tc.want, tc.not, routesOf(client), err)
		}
	}
}
