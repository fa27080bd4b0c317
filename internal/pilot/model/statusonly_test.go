package model

import (
	"testing"

	metav1alpha1 "istio.io/api/meta/v1alpha1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pilot writes status on the Istio kinds it reads; such a write (same
// generation, labels and annotations) must not count as a config change,
// or every status write would cause a push and another snapshot.
func TestStatusOnlyUpdatesAreIgnored(t *testing.T) {
	old := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: 3, ResourceVersion: "10", Labels: map[string]string{"x": "1"}}}
	withStatus := old.DeepCopy()
	withStatus.ResourceVersion = "11"
	withStatus.Status.Conditions = []*metav1alpha1.IstioCondition{{Type: "mesh.io/Enforced", Status: "False"}}
	if !statusOnly(old, withStatus) {
		t.Error("a status write counted as a config change")
	}
	spec := withStatus.DeepCopy()
	spec.Generation = 4
	relabel := withStatus.DeepCopy()
	relabel.Labels = map[string]string{"x": "2"}
	for name, n := range map[string]*securityv1.AuthorizationPolicy{"spec change": spec, "label change": relabel} {
		if statusOnly(old, n) {
			t.Errorf("%s ignored as status-only", name)
		}
	}
}
