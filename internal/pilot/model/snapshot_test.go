package model

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestServicesForMatchesWholeSelectorInNamespace(t *testing.T) {
	svc := func(name, ns string, sel map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.ServiceSpec{Selector: sel, ClusterIP: "10.0.0.1"}}
	}
	s := Build(1, Input{Services: []*corev1.Service{
		svc("web", "a", map[string]string{"app": "web"}),
		svc("web-v2", "a", map[string]string{"app": "web", "version": "v2"}),
		svc("canary", "a", map[string]string{"track": "canary"}),
		svc("web", "b", map[string]string{"app": "web"}),
		svc("headless", "a", nil),
		{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "a"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "x.example", Selector: map[string]string{"app": "web"}}},
	}})
	for _, tc := range []struct {
		ns     string
		labels map[string]string
		want   string
	}{
		{"a", map[string]string{"app": "web", "version": "v1"}, "[web.a.svc.cluster.local]"},
		{"a", map[string]string{"app": "web", "version": "v2", "track": "canary"}, "[canary.a.svc.cluster.local web-v2.a.svc.cluster.local web.a.svc.cluster.local]"},
		{"b", map[string]string{"app": "web", "version": "v2"}, "[web.b.svc.cluster.local]"},
		{"a", map[string]string{"version": "v2"}, "[]"},
		{"a", nil, "[]"},
	} {
		var got []string
		for _, svc := range s.ServicesFor(tc.ns, tc.labels) {
			got = append(got, svc.Hostname)
		}
		if fmt.Sprint(got) != tc.want && !(len(got) == 0 && tc.want == "[]") {
			t.Errorf("ServicesFor(%s, %v) = %v, want %s", tc.ns, tc.labels, got, tc.want)
		}
	}
}
