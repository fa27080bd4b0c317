package pilottest

import (
	"fmt"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"mesh.dev/mesh/internal/pilot/model"
)

// Synthetic builds a mesh of services spread over namespaces, each with
// podsPerService pods (versions v1 and v2 alternating) on one HTTP port;
// every tenth service has a DestinationRule with v1/v2 subsets and a
// VirtualService splitting 90/10. With scoped, each namespace gets a Sidecar
// limiting egress to its own namespace.
func Synthetic(services, podsPerService, namespaces int, scoped bool) *World {
	w := &World{Namespace: "ns-0"}
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("ns-%d", n)
		w.AddNamespace(ns, map[string]string{"mesh-injection": "enabled"})
		if scoped {
			w.In.Sidecars = append(w.In.Sidecars, &networkingv1.Sidecar{
				ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
				Spec:       networkingapi.Sidecar{Egress: []*networkingapi.IstioEgressListener{{Hosts: []string{"./*"}}}},
			})
		}
	}
	for i := 0; i < services; i++ {
		ns := fmt.Sprintf("ns-%d", i%namespaces)
		name := fmt.Sprintf("svc-%d", i)
		w.In.Services = append(w.In.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{
				ClusterIP: fmt.Sprintf("198.19.%d.%d", i/250, i%250+1),
				Selector:  map[string]string{"app": name},
				Ports:     []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}},
			},
		})
		for p := 0; p < podsPerService; p++ {
			w.In.Pods = append(w.In.Pods, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, p), Namespace: ns, Labels: map[string]string{
					"app": name, "version": fmt.Sprintf("v%d", p%2+1), model.TLSModeLabel: "istio",
				}},
				Spec:   corev1.PodSpec{ServiceAccountName: name},
				Status: corev1.PodStatus{PodIP: w.NextIP(), Phase: corev1.PodRunning},
			})
		}
		if i%10 != 0 {
			continue
		}
		w.In.DestinationRules = append(w.In.DestinationRules, &networkingv1.DestinationRule{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: networkingapi.DestinationRule{Host: name, Subsets: []*networkingapi.Subset{
				{Name: "v1", Labels: map[string]string{"version": "v1"}},
				{Name: "v2", Labels: map[string]string{"version": "v2"}},
			}},
		})
		w.In.VirtualServices = append(w.In.VirtualServices, &networkingv1.VirtualService{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: networkingapi.VirtualService{Hosts: []string{name}, Http: []*networkingapi.HTTPRoute{{
				Route: []*networkingapi.HTTPRouteDestination{
					{Destination: &networkingapi.Destination{Host: name, Subset: "v1"}, Weight: 90},
					{Destination: &networkingapi.Destination{Host: name, Subset: "v2"}, Weight: 10},
				},
			}}},
		})
	}
	w.In.EndpointSlices = SlicesFor(w.In.Services, w.In.Pods)
	return w
}

// Snapshot builds the world's current snapshot, recomputing EndpointSlices.
func (w *World) Snapshot(version uint64) *model.Snapshot {
	w.In.EndpointSlices = SlicesFor(w.In.Services, w.In.Pods)
	return model.Build(version, w.In)
}
