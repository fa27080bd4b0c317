package model

import (
	"context"

	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"
	metav1alpha1 "istio.io/api/meta/v1alpha1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
)

// StatusWriter is a kind's status column: how pilot's status writer
// (internal/pilot/status) reads and writes the status of the kind's
// objects. A kind pilot writes no status on has none.
type StatusWriter struct {
	// Istio returns, for a kind with Istio's status (conditions and
	// validation messages, where pilot reports what it does not carry
	// out), the object's spec as the field table walks it (a proto
	// message, or mesh's own kinds' Go struct) and its status. nil for
	// the Gateway API's kinds, whose status internal/gatewayapi works out.
	Istio func(obj metav1.Object) (spec any, st IstioStatus)
	// Update writes obj's status as it is now (obj is a copy the writer
	// changed).
	Update func(ctx context.Context, c StatusClients, obj metav1.Object) error
}

// IstioStatus is the part of an object's status in Istio's shape that
// pilot writes (ServiceEntry's status has more, so it is pointed at).
type IstioStatus struct {
	Conditions *[]*metav1alpha1.IstioCondition
	Messages   *[]*analysisv1alpha1.AnalysisMessageBase
	Observed   *int64
}

func fields(st *metav1alpha1.IstioStatus) IstioStatus {
	return IstioStatus{&st.Conditions, &st.ValidationMessages, &st.ObservedGeneration}
}

// StatusClients are the clients status is written with; a nil one writes
// nothing of its API's kinds (Update is not called).
type StatusClients struct {
	Istio      istioclient.Interface
	GatewayAPI gwclient.Interface
	Dynamic    dynamic.Interface
}

// Has reports whether c can write kind k's status.
func (c StatusClients) Has(k *Kind) bool {
	switch {
	case k.GVK.Group == gatewayAPIGroup:
		return c.GatewayAPI != nil
	case k.GVK.Group == "" || k.GVK.Group == "discovery.k8s.io":
		return false
	case k.GVK.Group == meshnet.GroupName:
		return c.Dynamic != nil
	}
	return c.Istio != nil
}

var statusUpdate = metav1.UpdateOptions{FieldManager: "mesh-pilot"}

// istioStatus is the status column of a kind with Istio's status.
func istioStatus[T metav1.Object](of func(T) (any, IstioStatus), update func(context.Context, StatusClients, T) error) *StatusWriter {
	return &StatusWriter{
		Istio:  func(o metav1.Object) (any, IstioStatus) { return of(o.(T)) },
		Update: func(ctx context.Context, c StatusClients, o metav1.Object) error { return update(ctx, c, o.(T)) },
	}
}

// gatewayAPIStatus is the status column of a Gateway API kind.
func gatewayAPIStatus[T metav1.Object](update func(context.Context, gwclient.Interface, T) error) *StatusWriter {
	return &StatusWriter{
		Update: func(ctx context.Context, c StatusClients, o metav1.Object) error {
			return update(ctx, c.GatewayAPI, o.(T))
		},
	}
}
