package gatewayapi

import (
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/enforced"
)

func TestRetryBecomesIstioRetries(t *testing.T) {
	in := world()
	rule := &in.HTTPRoutes[0].Spec.Rules[0]
	rule.Retry = &gwv1.HTTPRouteRetry{Attempts: ptr(3), Codes: []gwv1.HTTPRouteRetryStatusCode{500, 503}, Backoff: ptr(gwv1.Duration("100ms"))}
	rule.Timeouts = &gwv1.HTTPRouteTimeouts{BackendRequest: ptr(gwv1.Duration("1s"))}
	r := Translate(in).VirtualServices[0].Spec.Http[0].Retries
	if r.GetAttempts() != 3 || r.GetRetryOn() != "connect-failure,refused-stream,unavailable,cancelled,500,503" ||
		r.GetBackoff().AsDuration() != 100*time.Millisecond || r.GetPerTryTimeout().AsDuration() != time.Second {
		t.Errorf("retry 3 on 500,503 with 100ms backoff and a 1s backendRequest timeout became %v", r)
	}

	rule.Retry, rule.Timeouts = &gwv1.HTTPRouteRetry{Attempts: ptr(0)}, nil
	if r := Translate(in).VirtualServices[0].Spec.Http[0].Retries; r.GetAttempts() != 0 || r == nil {
		t.Errorf("attempts 0 must turn retries off (an Istio policy with 0 attempts), got %v", r)
	}
	if f := enforced.Struct("HTTPRoute", &in.HTTPRoutes[0].Spec); len(f) != 0 {
		t.Errorf("retry is carried out, yet the field table reports %v", f)
	}
}

func TestGRPCBackendRefFilters(t *testing.T) {
	in := world()
	backend := func(filters ...gwv1.GRPCRouteFilter) []gwv1.GRPCBackendRef {
		return []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "cart", Port: ptr(gwv1.PortNumber(8080))}},
			Filters: filters}}
	}
	route := &gwv1.GRPCRoute{ObjectMeta: metav1.ObjectMeta{Name: "rpc", Namespace: "shop", Generation: 1},
		Spec: gwv1.GRPCRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web", Namespace: ptr(gwv1.Namespace("infra"))}}},
			Hostnames:       []gwv1.Hostname{"rpc.example.com"},
			Rules: []gwv1.GRPCRouteRule{{BackendRefs: backend(gwv1.GRPCRouteFilter{Type: gwv1.GRPCRouteFilterRequestHeaderModifier,
				RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Backend", Value: "cart"}}}})}},
		}}
	in.HTTPRoutes, in.GRPCRoutes = nil, []*gwv1.GRPCRoute{route}
	out := Translate(in)
	if len(out.VirtualServices) != 1 {
		t.Fatalf("virtual services %v", out.VirtualServices)
	}
	if h := out.VirtualServices[0].Spec.Http[0].Route[0].GetHeaders().GetRequest().GetSet(); h["x-backend"] != "cart" {
		t.Errorf("a backendRef's request header filter was dropped: destination headers %v", out.VirtualServices[0].Spec.Http[0].Route[0].GetHeaders())
	}

	route.Spec.Rules[0].BackendRefs = backend(gwv1.GRPCRouteFilter{Type: gwv1.GRPCRouteFilterRequestMirror,
		RequestMirror: &gwv1.HTTPRequestMirrorFilter{BackendRef: gwv1.BackendObjectReference{Name: "cart", Port: ptr(gwv1.PortNumber(8080))}}})
	c := cond(t, Translate(in).RouteParents["GRPCRoute/shop/rpc"][0].Conditions, "Accepted")
	if c.Status != metav1.ConditionFalse || c.Reason != string(gwv1.RouteReasonUnsupportedValue) {
		t.Errorf("a mirror on a backendRef, which mesh does not do there, must make the route not accepted: %+v", c)
	}
}

func TestClientCertificateValidationFailsClosed(t *testing.T) {
	in := world()
	gw := in.Gateways[0]
	gw.Spec.Listeners = append(gw.Spec.Listeners, gwv1.Listener{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType,
		TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "web-cert"}}}})
	servedOn := func(out *Output, port uint32) bool {
		for _, g := range out.Gateways {
			for _, s := range g.Spec.Servers {
				if s.GetPort().GetNumber() == port {
					return true
				}
			}
		}
		return false
	}
	if out := Translate(in); !servedOn(out, 443) {
		t.Fatalf("without spec.tls the HTTPS listener must be served: %v", out.Gateways)
	}
	gw.Spec.TLS = &gwv1.GatewayTLSConfig{Frontend: &gwv1.FrontendTLSConfig{Default: gwv1.TLSConfig{Validation: &gwv1.FrontendTLSValidation{
		CACertificateRefs: []gwv1.ObjectReference{{Kind: "ConfigMap", Name: "client-ca"}}}}}}
	out := Translate(in)
	if servedOn(out, 443) {
		t.Errorf("a listener that must check client certificates is served without the check: %v", out.Gateways)
	}
	ls := out.GatewayStatus["infra/web"].Listeners
	if c := cond(t, ls[2].Conditions, "Accepted"); c.Status != metav1.ConditionFalse || c.Reason != "NoValidCACertificate" {
		t.Errorf("https listener Accepted = %+v", c)
	}
	if c := cond(t, ls[0].Conditions, "Accepted"); c.Status != metav1.ConditionTrue {
		t.Errorf("the plain HTTP listener is not covered by client validation: %+v", c)
	}
	// A perPort entry without validation exempts its port.
	gw.Spec.TLS.Frontend.PerPort = []gwv1.TLSPortConfig{{Port: 443, TLS: gwv1.TLSConfig{}}}
	if !servedOn(Translate(in), 443) {
		t.Errorf("port 443 is exempt from the default validation by its perPort entry, yet not served")
	}
}

func TestNotEnforcedFieldsInStatus(t *testing.T) {
	in := world()
	if c := apimeta.FindStatusCondition(Translate(in).RouteParents["HTTPRoute/shop/shop"][0].Conditions, enforced.ConditionType); c != nil {
		t.Fatalf("a route mesh carries out in full has %+v", c)
	}
	in.HTTPRoutes[0].Spec.UseDefaultGateways = gwv1.GatewayDefaultScopeAll
	in.Gateways[0].Spec.Listeners[0].TLS = nil
	in.Gateways[0].Spec.AllowedListeners = &gwv1.AllowedListeners{Namespaces: &gwv1.ListenerNamespaces{From: ptr(gwv1.NamespacesFromAll)}}
	out := Translate(in)
	c := cond(t, out.RouteParents["HTTPRoute/shop/shop"][0].Conditions, enforced.ConditionType)
	if c.Status != metav1.ConditionFalse || c.Reason != "NotEnforced" || !strings.Contains(c.Message, "spec.useDefaultGateways") || c.ObservedGeneration != 3 {
		t.Errorf("route condition %+v; want False NotEnforced naming spec.useDefaultGateways for generation 3", c)
	}
	if c := cond(t, out.GatewayStatus["infra/web"].Conditions, enforced.ConditionType); !strings.Contains(c.Message, "spec.allowedListeners: mesh does not read ListenerSets") {
		t.Errorf("gateway condition %+v; want it to name spec.allowedListeners and why", c)
	}
	if c := cond(t, out.RouteParents["HTTPRoute/shop/shop"][0].Conditions, "Accepted"); c.Status != metav1.ConditionTrue {
		t.Errorf("a field not carried out must not refuse the route: Accepted %+v", c)
	}
}
