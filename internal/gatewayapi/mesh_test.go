package gatewayapi

import (
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/enforced"
)

// meshWorld is two Services in namespace mesh (echo with ports 80 and
// 8080, other with 80) and a client namespace, with no routes yet.
func meshWorld() Input {
	svc := func(name string, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "mesh"},
			Spec: corev1.ServiceSpec{ClusterIP: "198.19.0.20", Ports: ports}}
	}
	ns := func(n string) *corev1.Namespace { return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}} }
	return Input{
		Namespaces: []*corev1.Namespace{ns("mesh"), ns("client"), ns("other")},
		Services: []*corev1.Service{
			svc("echo", corev1.ServicePort{Name: "http", Port: 80}, corev1.ServicePort{Name: "http-alt", Port: 8080}),
			svc("other", corev1.ServicePort{Name: "http", Port: 80}),
		},
	}
}

// serviceRoute is an HTTPRoute in ns attached to Service mesh/echo that
// sets response header x-route to its name and sends to echo:80.
func serviceRoute(ns, name string, age time.Duration, ref gwv1.ParentReference) *gwv1.HTTPRoute {
	return &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 4,
		CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(age))},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{ref}},
			Rules: []gwv1.HTTPRouteRule{{
				Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterResponseHeaderModifier,
					ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Route", Value: name}}}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
					Name: "echo", Namespace: ptr(gwv1.Namespace("mesh")), Port: ptr(gwv1.PortNumber(80))}}}},
			}},
		}}
}

func serviceParent(name string) gwv1.ParentReference {
	return gwv1.ParentReference{Group: ptr(gwv1.Group("")), Kind: ptr(gwv1.Kind("Service")), Name: gwv1.ObjectName(name)}
}

func meshVS(out *Output, ns string) *networkingv1.VirtualService {
	for _, vs := range out.VirtualServices {
		if vs.Namespace == ns && slices.Equal(vs.Spec.Gateways, []string{"mesh"}) {
			return vs
		}
	}
	return nil
}

func TestServiceParentConfiguresSidecars(t *testing.T) {
	in := meshWorld()
	in.HTTPRoutes = []*gwv1.HTTPRoute{serviceRoute("mesh", "producer", 0, serviceParent("echo"))}
	out := Translate(in)
	ps := out.RouteParents["HTTPRoute/mesh/producer"]
	if len(ps) != 1 || ps[0].ControllerName != ControllerName {
		t.Fatalf("parents %+v; want one, by %s", ps, ControllerName)
	}
	if c := cond(t, ps[0].Conditions, "Accepted"); c.Status != metav1.ConditionTrue || c.Reason != "Accepted" || c.ObservedGeneration != 4 {
		t.Errorf("Accepted = %+v", c)
	}
	if c := cond(t, ps[0].Conditions, "ResolvedRefs"); c.Status != metav1.ConditionTrue || c.Reason != "ResolvedRefs" {
		t.Errorf("ResolvedRefs = %+v", c)
	}
	vs := meshVS(out, "mesh")
	if vs == nil {
		t.Fatalf("no mesh-bound VirtualService in %v", out.VirtualServices)
	}
	if !slices.Equal(vs.Spec.Hosts, []string{"echo.mesh.svc.cluster.local"}) || !slices.Equal(vs.Spec.ExportTo, []string{"*"}) {
		t.Errorf("hosts %v exportTo %v; want the Service's host, exported everywhere (a producer route)", vs.Spec.Hosts, vs.Spec.ExportTo)
	}
	if len(vs.Spec.Http) != 1 || vs.Spec.Http[0].GetHeaders().GetResponse().GetSet()["x-route"] != "producer" ||
		vs.Spec.Http[0].Route[0].Destination.Host != "echo.mesh.svc.cluster.local" || vs.Spec.Http[0].Match[0].Port != 0 {
		t.Errorf("routes %v; want the rule's header and backend, on every port", vs.Spec.Http)
	}
	if vs.Annotations[AnnotationGeneratedFrom] != "gateway.networking.k8s.io/HTTPRoute/mesh/producer" {
		t.Errorf("generated-from %q", vs.Annotations[AnnotationGeneratedFrom])
	}
	if f := enforced.Struct("HTTPRoute", &in.HTTPRoutes[0].Spec); len(f) != 0 {
		t.Errorf("a Service parent is carried out, yet the field table reports %v", f)
	}
	if e, ok := enforced.Lookup("HTTPRoute", "spec.parentRefs.kind"); !ok || !e.Enforced || !strings.Contains(e.Note, "sidecars") || strings.Contains(e.Note, "not accepted") {
		t.Errorf("field table entry for spec.parentRefs.kind %+v; want it to say a Service parent configures sidecars", e)
	}
}

func TestServiceParentPort(t *testing.T) {
	in := meshWorld()
	ref := serviceParent("echo")
	ref.Port = ptr(gwv1.PortNumber(80))
	in.HTTPRoutes = []*gwv1.HTTPRoute{serviceRoute("mesh", "port80", 0, ref)}
	vs := meshVS(Translate(in), "mesh")
	if vs == nil || vs.Spec.Http[0].Match[0].Port != 80 {
		t.Fatalf("parentRef port 80: routes %v; want them matching port 80 alone", vs)
	}

	ref.Port = nil
	ref.SectionName = ptr(gwv1.SectionName("http-alt"))
	in.HTTPRoutes = []*gwv1.HTTPRoute{serviceRoute("mesh", "alt", 0, ref)}
	if vs := meshVS(Translate(in), "mesh"); vs == nil || vs.Spec.Http[0].Match[0].Port != 8080 {
		t.Fatalf("parentRef sectionName http-alt: routes %v; want them matching port 8080 alone", vs)
	}

	ref.SectionName = nil
	ref.Port = ptr(gwv1.PortNumber(9999))
	in.HTTPRoutes = []*gwv1.HTTPRoute{serviceRoute("mesh", "none", 0, ref)}
	out := Translate(in)
	if c := cond(t, out.RouteParents["HTTPRoute/mesh/none"][0].Conditions, "Accepted"); c.Status != metav1.ConditionFalse || c.Reason != "NoMatchingParent" {
		t.Errorf("a port the Service does not have: Accepted %+v", c)
	}
	if vs := meshVS(out, "mesh"); vs != nil {
		t.Errorf("a route not accepted still configures sidecars: %v", vs)
	}

	in.HTTPRoutes = []*gwv1.HTTPRoute{serviceRoute("mesh", "missing", 0, serviceParent("nosuch"))}
	if c := cond(t, Translate(in).RouteParents["HTTPRoute/mesh/missing"][0].Conditions, "Accepted"); c.Status != metav1.ConditionFalse || c.Reason != "NoMatchingParent" {
		t.Errorf("a Service that does not exist: Accepted %+v", c)
	}
}

func TestConsumerRoute(t *testing.T) {
	in := meshWorld()
	consumerRef := serviceParent("echo")
	consumerRef.Namespace = ptr(gwv1.Namespace("mesh"))
	in.HTTPRoutes = []*gwv1.HTTPRoute{
		serviceRoute("mesh", "producer", time.Hour, serviceParent("echo")),
		// Older than the producer route: precedence must not come from age.
		serviceRoute("client", "consumer", 0, consumerRef),
	}
	out := Translate(in)
	c := cond(t, out.RouteParents["HTTPRoute/client/consumer"][0].Conditions, "ResolvedRefs")
	if c.Status != metav1.ConditionTrue {
		t.Errorf("a consumer route's backendRef to its own parent Service needs no ReferenceGrant: ResolvedRefs %+v", c)
	}
	cvs, pvs := meshVS(out, "client"), meshVS(out, "mesh")
	if cvs == nil || pvs == nil {
		t.Fatalf("want a consumer and a producer VirtualService, got %v", out.VirtualServices)
	}
	if !slices.Equal(cvs.Spec.ExportTo, []string{"."}) || cvs.Spec.Http[0].GetHeaders().GetResponse().GetSet()["x-route"] != "consumer" {
		t.Errorf("consumer VirtualService exportTo %v routes %v; want its own namespace alone", cvs.Spec.ExportTo, cvs.Spec.Http)
	}
	if slices.Contains(pvs.Spec.ExportTo, "client") || slices.Contains(pvs.Spec.ExportTo, "*") || !slices.Contains(pvs.Spec.ExportTo, "other") {
		t.Errorf("producer VirtualService exportTo %v; want every namespace but the consumer's", pvs.Spec.ExportTo)
	}

	// A backendRef to another namespace's Service that is not the parent
	// still needs a grant.
	in.HTTPRoutes[1].Spec.Rules[0].BackendRefs[0].Name = "other"
	c = cond(t, Translate(in).RouteParents["HTTPRoute/client/consumer"][0].Conditions, "ResolvedRefs")
	if c.Status != metav1.ConditionFalse || c.Reason != "RefNotPermitted" {
		t.Errorf("backendRef mesh/other without a grant: ResolvedRefs %+v", c)
	}
}

func TestServiceRoutesMergeByPrecedence(t *testing.T) {
	in := meshWorld()
	a := serviceRoute("mesh", "a", 0, serviceParent("echo"))
	b := serviceRoute("mesh", "b", time.Hour, serviceParent("echo"))
	b.Spec.Rules[0].Matches = []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchExact), Value: ptr("/exact")}}}
	in.HTTPRoutes = []*gwv1.HTTPRoute{a, b}
	var n int
	var vs *networkingv1.VirtualService
	for _, v := range Translate(in).VirtualServices {
		if v.Spec.Hosts[0] == "echo.mesh.svc.cluster.local" {
			n, vs = n+1, v
		}
	}
	if n != 1 {
		t.Fatalf("%d VirtualServices for one Service; a sidecar reads one per host, so the routes must merge", n)
	}
	if len(vs.Spec.Http) != 2 || vs.Spec.Http[0].GetMatch()[0].GetUri().GetExact() != "/exact" {
		t.Errorf("routes %v; want b's exact match before a's catch-all, though b is younger", vs.Spec.Http)
	}
}

func TestGRPCRouteServiceParent(t *testing.T) {
	in := meshWorld()
	in.GRPCRoutes = []*gwv1.GRPCRoute{{ObjectMeta: metav1.ObjectMeta{Name: "rpc", Namespace: "mesh"},
		Spec: gwv1.GRPCRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{serviceParent("echo")}},
			Rules: []gwv1.GRPCRouteRule{{BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{
				BackendObjectReference: gwv1.BackendObjectReference{Name: "other", Port: ptr(gwv1.PortNumber(80))}}}}}},
		}}}
	out := Translate(in)
	if c := cond(t, out.RouteParents["GRPCRoute/mesh/rpc"][0].Conditions, "Accepted"); c.Status != metav1.ConditionTrue {
		t.Errorf("Accepted = %+v", c)
	}
	if vs := meshVS(out, "mesh"); vs == nil || vs.Spec.Http[0].Route[0].Destination.Host != "other.mesh.svc.cluster.local" {
		t.Errorf("a GRPCRoute on Service echo must send echo's traffic to other: %v", vs)
	}
}
