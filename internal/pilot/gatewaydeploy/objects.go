package gatewaydeploy

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/pilot/inject"
)

// ServiceTypeAnnotation on a Gateway picks its Service's type, as in Istio.
const ServiceTypeAnnotation = "networking.istio.io/service-type"

// Objects are what pilot applies for one Gateway, in the order applied: the
// ServiceAccount, the Deployment of the gateway proxy, and the Service that
// gives the Gateway its address. All are named <gateway>-<class>, labelled
// with the Gateway's name and class (and spec.infrastructure's labels and
// annotations), and owned by the Gateway, so the garbage collector removes
// them with it.
type Objects struct {
	ServiceAccount *corev1.ServiceAccount
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
}

// Build makes the objects of one Gateway's deployment. svcType is the
// Service type unless the Gateway's ServiceTypeAnnotation says otherwise.
func Build(d gatewayapi.Deployment, v inject.Values, svcType corev1.ServiceType) Objects {
	gw := d.Gateway
	name := gatewayapi.DeploymentName(gw.Name, d.Class)
	labels := map[string]string{}
	annotations := map[string]string{}
	if inf := gw.Spec.Infrastructure; inf != nil {
		for k, val := range inf.Labels {
			labels[string(k)] = string(val)
		}
		for k, val := range inf.Annotations {
			annotations[string(k)] = string(val)
		}
	}
	labels[gatewayapi.LabelGatewayName] = gw.Name
	labels[gatewayapi.LabelGatewayClass] = d.Class
	labels[ManagedLabel] = ManagedValue
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: name, Namespace: gw.Namespace,
			Labels: copyMap(labels), Annotations: copyMap(annotations),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID,
				Controller: ptr(true),
			}},
		}
	}
	if t, ok := gw.Annotations[ServiceTypeAnnotation]; ok {
		svcType = corev1.ServiceType(t)
	}
	if svcType == "" {
		svcType = corev1.ServiceTypeLoadBalancer
	}

	var cports []corev1.ContainerPort
	var sports []corev1.ServicePort
	for _, p := range d.Ports {
		cports = append(cports, corev1.ContainerPort{Name: p.Name, ContainerPort: p.Port, Protocol: corev1.ProtocolTCP})
		p.TargetPort = intstr.FromInt32(p.Port)
		sports = append(sports, p)
	}
	// The status port, as Istio's generated Service has it.
	sports = append([]corev1.ServicePort{{Name: "status-port", Port: 15021, TargetPort: intstr.FromInt32(15021), Protocol: corev1.ProtocolTCP}}, sports...)

	podLabels := copyMap(labels)
	delete(podLabels, ManagedLabel)
	podLabels[inject.InjectLabel] = "false"
	podAnnotations := copyMap(annotations)
	podAnnotations["prometheus.io/scrape"] = "true"
	podAnnotations["prometheus.io/port"] = "15020"
	podAnnotations["prometheus.io/path"] = "/stats/prometheus"

	o := Objects{
		ServiceAccount: &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta()},
		Deployment: &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: meta(),
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr(int32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{gatewayapi.LabelGatewayName: gw.Name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
					Spec:       inject.GatewayPodSpec(v, name, cports),
				},
			},
		},
		Service: &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(),
			Spec: corev1.ServiceSpec{
				Type:     svcType,
				Selector: map[string]string{gatewayapi.LabelGatewayName: gw.Name},
				Ports:    sports,
			},
		},
	}
	return o
}

// ManagedLabel marks what the automated deployment created, so that pilot
// finds (and removes) the objects of Gateways it no longer serves.
const (
	ManagedLabel = "gateway.mesh.io/managed"
	ManagedValue = "mesh.dev-gateway-controller"
)

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ptr[T any](v T) *T { return &v }
