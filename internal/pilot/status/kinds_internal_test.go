package status

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwscheme "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/scheme"

	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/pilot/model"
)

// TestGatewayAPIStatusKinds: every row of pilot's kind table with a
// Gateway API status column has its status worked out from
// internal/gatewayapi's output (a row gatewayAPIStatus has no case for
// would never be written).
func TestGatewayAPIStatusKinds(t *testing.T) {
	const ns, name = "shop", "one"
	parents := []gwv1.RouteParentStatus{{ParentRef: gwv1.ParentReference{Name: "gw"}, ControllerName: "mesh.io/gateway-controller",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted"}}}}
	out := &gatewayapi.Output{
		Classes:       map[string]gwv1.GatewayClassStatus{name: {Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted"}}}},
		GatewayStatus: map[string]gwv1.GatewayStatus{ns + "/" + name: {Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"}}}},
		RouteParents: map[string][]gwv1.RouteParentStatus{
			gatewayapi.RouteKey("HTTPRoute", ns, name): parents,
			gatewayapi.RouteKey("GRPCRoute", ns, name): parents,
		},
	}
	n := 0
	for _, k := range model.Kinds {
		if k.Status == nil || k.Status.Istio != nil {
			continue
		}
		n++
		ro, err := gwscheme.Scheme.New(k.GVK)
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		o := ro.(metav1.Object)
		o.SetName(name)
		if k.GVK.Kind != "GatewayClass" {
			o.SetNamespace(ns)
		}
		if _, _, x, ok := gatewayAPIStatus(o, out, nil, metav1.Now()); !ok || x == nil {
			t.Errorf("kind %s has a Gateway API status column but its status is never worked out (gatewayAPIStatus)", k)
		}
	}
	if n != 4 {
		t.Errorf("%d Gateway API kinds with status in model.Kinds; want GatewayClass, Gateway, HTTPRoute, GRPCRoute", n)
	}
}
