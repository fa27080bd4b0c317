package gatewayapi

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func world() Input {
	class := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Generation: 1},
		Spec: gwv1.GatewayClassSpec{ControllerName: ControllerName}}
	other := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "example.com/other"}}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "infra", Generation: 2},
		Spec: gwv1.GatewaySpec{GatewayClassName: "mesh", Listeners: []gwv1.Listener{
			{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType,
				AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}}},
			{Name: "tcp", Port: 9000, Protocol: gwv1.TCPProtocolType},
		}}}
	svc := func(ns, name, ip string, port int32) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Port: port}}}}
	}
	route := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop", Generation: 3},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web", Namespace: ptr(gwv1.Namespace("infra"))}}},
			Hostnames:       []gwv1.Hostname{"shop.example.com"},
			Rules: []gwv1.HTTPRouteRule{
				{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/cart")}}},
					BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "cart", Port: ptr(gwv1.PortNumber(8080))}}}}},
				{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
					Name: "catalog", Namespace: ptr(gwv1.Namespace("catalog")), Port: ptr(gwv1.PortNumber(80))}}}}},
			},
		}}
	return Input{
		Classes:    []*gwv1.GatewayClass{class, other},
		Gateways:   []*gwv1.Gateway{gw},
		HTTPRoutes: []*gwv1.HTTPRoute{route},
		Services: []*corev1.Service{
			svc("infra", "web-mesh", "198.19.0.10", 80), svc("shop", "cart", "198.19.0.11", 8080), svc("catalog", "catalog", "198.19.0.12", 80),
		},
	}
}

func cond(t *testing.T, conds []metav1.Condition, typ string) metav1.Condition {
	t.Helper()
	c := apimeta.FindStatusCondition(conds, typ)
	if c == nil {
		t.Fatalf("no %s condition in %+v", typ, conds)
	}
	return *c
}

func TestTranslate(t *testing.T) {
	out := Translate(world())
	if _, ok := out.Classes["other"]; ok {
		t.Error("status written for another controller's class")
	}
	if c := cond(t, out.Classes["mesh"].Conditions, "Accepted"); c.Status != metav1.ConditionTrue || c.ObservedGeneration != 1 {
		t.Errorf("class Accepted = %+v", c)
	}
	gs := out.GatewayStatus["infra/web"]
	if c := cond(t, gs.Conditions, "Accepted"); c.Status != metav1.ConditionTrue || c.Reason != "ListenersNotValid" || c.ObservedGeneration != 2 {
		t.Errorf("gateway Accepted = %+v (one listener is TCP)", c)
	}
	if c := cond(t, gs.Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("gateway Programmed = %+v", c)
	}
	if len(gs.Addresses) != 1 || gs.Addresses[0].Value != "198.19.0.10" {
		t.Errorf("addresses = %+v, want the Service's cluster IP", gs.Addresses)
	}
	if len(gs.Listeners) != 2 || gs.Listeners[0].AttachedRoutes != 1 || cond(t, gs.Listeners[1].Conditions, "Accepted").Reason != "UnsupportedProtocol" {
		t.Errorf("listeners = %+v", gs.Listeners)
	}
	ps := out.RouteParents["HTTPRoute/shop/shop"]
	if len(ps) != 1 || cond(t, ps[0].Conditions, "Accepted").Status != metav1.ConditionTrue {
		t.Fatalf("route parents = %+v", ps)
	}
	if c := cond(t, ps[0].Conditions, "ResolvedRefs"); c.Status != metav1.ConditionFalse || c.Reason != "RefNotPermitted" {
		t.Errorf("cross-namespace backend without a ReferenceGrant: ResolvedRefs = %+v", c)
	}
	if len(out.Gateways) != 1 || out.Gateways[0].Name != "web~http" || out.Gateways[0].Spec.Selector[LabelGatewayName] != "web" {
		t.Fatalf("generated gateways = %+v", out.Gateways)
	}
	if len(out.VirtualServices) != 1 {
		t.Fatalf("generated virtual services = %+v", out.VirtualServices)
	}
	vs := out.VirtualServices[0]
	if vs.Spec.Hosts[0] != "shop.example.com" || vs.Spec.Gateways[0] != "infra/web~http" {
		t.Errorf("virtual service hosts %v gateways %v", vs.Spec.Hosts, vs.Spec.Gateways)
	}
	// /cart becomes exact /cart and prefix /cart/, before the catch-all,
	// which answers 500 (its only backend is not permitted).
	if len(vs.Spec.Http) != 3 || vs.Spec.Http[0].Match[0].Uri.GetExact() != "/cart" || vs.Spec.Http[1].Match[0].Uri.GetPrefix() != "/cart/" ||
		vs.Spec.Http[2].DirectResponse.GetStatus() != 500 {
		t.Errorf("routes = %v", vs.Spec.Http)
	}
	if d := vs.Spec.Http[0].Route[0].Destination; d.Host != "cart.shop.svc.cluster.local" || d.Port.Number != 8080 {
		t.Errorf("destination = %v", d)
	}

	in := world()
	in.Grants = []*gwv1.ReferenceGrant{{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "catalog"},
		Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: "shop"}},
			To:   []gwv1.ReferenceGrantTo{{Kind: "Service"}},
		}}}
	out = Translate(in)
	if c := cond(t, out.RouteParents["HTTPRoute/shop/shop"][0].Conditions, "ResolvedRefs"); c.Status != metav1.ConditionTrue {
		t.Errorf("with a ReferenceGrant: ResolvedRefs = %+v", c)
	}
	if d := out.VirtualServices[0].Spec.Http[2].Route[0].Destination; d.Host != "catalog.catalog.svc.cluster.local" {
		t.Errorf("granted backend destination = %v", d)
	}
}

func TestIntersect(t *testing.T) {
	for _, tc := range []struct {
		route    []gwv1.Hostname
		listener string
		want     []string
	}{
		{nil, "", []string{"*"}},
		{nil, "*.example.com", []string{"*.example.com"}},
		{[]gwv1.Hostname{"a.example.com"}, "*.example.com", []string{"a.example.com"}},
		{[]gwv1.Hostname{"*.example.com"}, "a.example.com", []string{"a.example.com"}},
		{[]gwv1.Hostname{"a.other.com"}, "*.example.com", nil},
		{[]gwv1.Hostname{"example.com"}, "*.example.com", nil},
	} {
		var l *gwv1.Hostname
		if tc.listener != "" {
			l = ptr(gwv1.Hostname(tc.listener))
		}
		got := intersect(tc.route, l)
		if len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] {
			t.Errorf("intersect(%v, %q) = %v, want %v", tc.route, tc.listener, got, tc.want)
		}
	}
}

// A route whose hostnames a listener does not serve is not Accepted there
// and not counted in its attachedRoutes (the suite's
// GatewayWithAttachedRoutes and HTTPRouteHostnameIntersection).
func TestAttachedRoutesCountsAcceptedOnly(t *testing.T) {
	in := world()
	in.Gateways[0].Spec.Listeners[0].Hostname = ptr(gwv1.Hostname("shop.example.com"))
	other := in.HTTPRoutes[0].DeepCopy()
	other.Name, other.Spec.Hostnames = "elsewhere", []gwv1.Hostname{"other.example.com"}
	in.HTTPRoutes = append(in.HTTPRoutes, other)
	out := Translate(in)
	if got := out.GatewayStatus["infra/web"].Listeners[0].AttachedRoutes; got != 1 {
		t.Errorf("attachedRoutes = %d, want 1 (the route for other.example.com is not attached)", got)
	}
	ps := out.RouteParents["HTTPRoute/shop/elsewhere"]
	if len(ps) != 1 || cond(t, ps[0].Conditions, "Accepted").Reason != "NoMatchingListenerHostname" {
		t.Errorf("route parents = %+v", ps)
	}
}
