package model

import (
	"reflect"
	"regexp"
	"slices"
	"sort"
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/validation"
	"mesh.dev/mesh/manifests"
)

// notPilotConfig are CRDs of the base chart that are not config pilot
// serves to proxies, with who reads them instead.
var notPilotConfig = map[string]string{
	"meshoperators.install.mesh.io": "read by `mesh install`'s operator, not by pilot",
	// The rest of the Gateway API's standard channel, shipped so the
	// channel is whole; pilot does not carry them out (docs/gateway-api.md).
	"backendtlspolicies.gateway.networking.k8s.io": "Gateway API standard channel; not carried out by pilot yet",
	"listenersets.gateway.networking.k8s.io":       "Gateway API standard channel; not carried out by pilot yet",
	"tcproutes.gateway.networking.k8s.io":          "Gateway API standard channel; not carried out by pilot yet",
	"tlsroutes.gateway.networking.k8s.io":          "Gateway API standard channel; not carried out by pilot yet",
	"udproutes.gateway.networking.k8s.io":          "Gateway API standard channel; not carried out by pilot yet",
}

// Every CRD the base chart ships is a row of the kind table (or named
// above with who reads it), and every CRD row is shipped.
func TestEveryShippedCRDHasAKind(t *testing.T) {
	raw, err := manifests.ChartFile(manifests.Base, "templates/crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := manifests.ChartFile(manifests.Base, "templates/gateway-api-crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw = append(raw, gw...)
	names := regexp.MustCompile(`"metadata": \{"name": "([a-z0-9.-]+)"`).FindAllSubmatch(raw, -1)
	if len(names) == 0 {
		t.Fatal("no CRD names found in the base chart's crds.yaml")
	}
	shipped := map[string]bool{}
	for _, m := range names {
		name := string(m[1])
		shipped[name] = true
		if notPilotConfig[name] != "" {
			continue
		}
		found := false
		for _, k := range Kinds {
			if k.CRD && k.Plural+"."+k.GVK.Group == name {
				found = true
			}
		}
		if !found {
			t.Errorf("the base chart ships CRD %s but the kind table (internal/pilot/model/kinds.go) has no row for it", name)
		}
	}
	for _, k := range Kinds {
		if k.CRD && !shipped[k.Plural+"."+k.GVK.Group] {
			t.Errorf("kind %s is marked CRD but the base chart ships no %s.%s", k, k.Plural, k.GVK.Group)
		}
	}
}

// The kinds the table validates are exactly those validation supports, at
// the version pilot watches.
func TestValidatedKindsMatchValidation(t *testing.T) {
	var table []string
	for _, k := range Kinds {
		if k.Validate == nil {
			continue
		}
		table = append(table, k.GVK.Group+"/"+k.GVK.Kind)
		if !validation.Supported(k.GVK) {
			t.Errorf("%s: validation does not support %s", k, k.GVK)
		}
	}
	sort.Strings(table)
	if got := validation.Kinds(); !slices.Equal(got, table) {
		t.Errorf("validation supports %v, the kind table validates %v", got, table)
	}
	for _, k := range Kinds {
		// The Gateway API's CRDs carry their own validation (schemas and
		// CEL rules the API server runs).
		if k.CRD && k.Validate == nil && k.GVK.Group != gatewayAPIGroup {
			t.Errorf("CRD kind %s has no validation", k)
		}
	}
}

// oneOfEach is an Input with one object of every kind, named after it.
func oneOfEach() Input {
	meta := func(kind string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "x-" + kind, Namespace: "default", UID: types.UID("uid-" + kind), ResourceVersion: "1"}
	}
	return Input{
		Services:               []*corev1.Service{{ObjectMeta: meta("Service")}},
		Namespaces:             []*corev1.Namespace{{ObjectMeta: meta("Namespace")}},
		EndpointSlices:         []*discoveryv1.EndpointSlice{{ObjectMeta: meta("EndpointSlice")}},
		Pods:                   []*corev1.Pod{{ObjectMeta: meta("Pod")}},
		Secrets:                []*corev1.Secret{{ObjectMeta: meta("Secret"), Type: corev1.SecretTypeTLS}},
		VirtualServices:        []*networkingv1.VirtualService{{ObjectMeta: meta("VirtualService")}},
		DestinationRules:       []*networkingv1.DestinationRule{{ObjectMeta: meta("DestinationRule")}},
		Gateways:               []*networkingv1.Gateway{{ObjectMeta: meta("Gateway")}},
		ServiceEntries:         []*networkingv1.ServiceEntry{{ObjectMeta: meta("ServiceEntry")}},
		Sidecars:               []*networkingv1.Sidecar{{ObjectMeta: meta("Sidecar")}},
		WorkloadEntries:        []*networkingv1.WorkloadEntry{{ObjectMeta: meta("WorkloadEntry")}},
		PeerAuthentications:    []*securityv1.PeerAuthentication{{ObjectMeta: meta("PeerAuthentication")}},
		AuthorizationPolicies:  []*securityv1.AuthorizationPolicy{{ObjectMeta: meta("AuthorizationPolicy")}},
		RequestAuthentications: []*securityv1.RequestAuthentication{{ObjectMeta: meta("RequestAuthentication")}},
		Telemetries:            []*telemetryv1.Telemetry{{ObjectMeta: meta("Telemetry")}},
		MetaRoutes:             []*meshnet.MetaRoute{{ObjectMeta: meta("MetaRoute")}},
		GatewayClasses:         []*gwv1.GatewayClass{{ObjectMeta: meta("GatewayClass")}},
		KubeGateways:           []*gwv1.Gateway{{ObjectMeta: meta("Gateway")}},
		HTTPRoutes:             []*gwv1.HTTPRoute{{ObjectMeta: meta("HTTPRoute")}},
		GRPCRoutes:             []*gwv1.GRPCRoute{{ObjectMeta: meta("GRPCRoute")}},
		ReferenceGrants:        []*gwv1.ReferenceGrant{{ObjectMeta: meta("ReferenceGrant")}},
	}
}

// Each row's snapshot accessor serves the objects of its kind that the
// snapshot was built from, and every Input field belongs to a row: a kind
// added to Input without a row (or without being copied into the
// snapshot) fails here.
func TestEveryKindReachesTheSnapshot(t *testing.T) {
	in := oneOfEach()
	fields := 0
	for i := 0; i < reflect.TypeOf(in).NumField(); i++ {
		if f := reflect.TypeOf(in).Field(i).Type; f.Kind() == reflect.Slice && f.Elem().Kind() == reflect.Pointer {
			fields++ // a list of objects, not of names (SecretNamespaces)
		}
	}
	if fields != len(Kinds) {
		t.Errorf("Input has %d object lists, the kind table %d rows", fields, len(Kinds))
	}
	s := Build(1, in)
	for _, k := range Kinds {
		objs := k.Objects(s)
		if len(objs) != 1 || objs[0].GetName() != "x-"+k.GVK.Kind {
			t.Errorf("%s: snapshot serves %v, want the one %s built from", k, objs, k)
		}
	}
}

// A change to a kind whose row has no reach function makes the change
// full; with it, a change it bounds is not full.
func TestKindWithoutReachIsAFullPush(t *testing.T) {
	a := Build(1, Input{})
	in := Input{PeerAuthentications: []*securityv1.PeerAuthentication{{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop", UID: "u", ResourceVersion: "1"}}}}
	b := Build(2, in)
	d, ok := Diff(a, b)
	if !ok || !d.Namespaces["shop"] || !slices.Equal(d.Kinds, []string{"PeerAuthentication"}) {
		t.Fatalf("PeerAuthentication in shop: ok %v namespaces %v kinds %v, want bounded to shop", ok, d.Namespaces, d.Kinds)
	}
	row := KindOf(securityv1.SchemeGroupVersion.WithKind("PeerAuthentication").GroupKind())
	saved := row.Reach
	row.Reach = nil
	defer func() { row.Reach = saved }()
	if _, ok := Diff(a, b); ok {
		t.Error("a changed kind without a reach function did not make the push full")
	}
	// An unchanged kind without reach changes nothing.
	if _, ok := Diff(b, Build(3, in)); !ok {
		t.Error("no change was made full by a kind without reach")
	}
}
