package gatewaydeploy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/pilot/inject"
)

func TestBuild(t *testing.T) {
	gw := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "infra", UID: "u1"},
		Spec: gwv1.GatewaySpec{GatewayClassName: "mesh", Infrastructure: &gwv1.GatewayInfrastructure{
			Labels:      map[gwv1.LabelKey]gwv1.LabelValue{"team": "shop"},
			Annotations: map[gwv1.AnnotationKey]gwv1.AnnotationValue{"note": "x"},
		}},
	}
	d := gatewayapi.Deployment{Gateway: gw, Class: "mesh", Ports: []corev1.ServicePort{
		{Name: "http-80", Port: 80, Protocol: corev1.ProtocolTCP},
		{Name: "https-443", Port: 443, Protocol: corev1.ProtocolTCP},
	}}
	v := inject.Values{ProxyImage: "mesh.dev/mesh-proxy:1.0", DiscoveryAddress: "mesh-pilot.mesh-system.svc:15012",
		CAAddress: "mesh-pilot.mesh-system.svc:15012", LogLevel: "info"}

	o := Build(d, v, corev1.ServiceTypeClusterIP)
	for _, m := range []metav1.ObjectMeta{o.ServiceAccount.ObjectMeta, o.Deployment.ObjectMeta, o.Service.ObjectMeta} {
		if m.Name != "web-mesh" || m.Namespace != "infra" {
			t.Errorf("object %s/%s, want infra/web-mesh", m.Namespace, m.Name)
		}
		if m.Labels[gatewayapi.LabelGatewayName] != "web" || m.Labels[gatewayapi.LabelGatewayClass] != "mesh" || m.Labels["team"] != "shop" || m.Annotations["note"] != "x" {
			t.Errorf("%s: labels %v annotations %v", m.Name, m.Labels, m.Annotations)
		}
		if len(m.OwnerReferences) != 1 || m.OwnerReferences[0].UID != "u1" || m.OwnerReferences[0].Kind != "Gateway" {
			t.Errorf("%s: owner %v, want the Gateway", m.Name, m.OwnerReferences)
		}
	}
	if o.Service.Spec.Type != corev1.ServiceTypeClusterIP || o.Service.Spec.Selector[gatewayapi.LabelGatewayName] != "web" {
		t.Errorf("service spec %+v", o.Service.Spec)
	}
	var ports []string
	for _, p := range o.Service.Spec.Ports {
		ports = append(ports, p.Name+":"+p.TargetPort.String())
	}
	if got := strings.Join(ports, " "); got != "status-port:15021 http-80:80 https-443:443" {
		t.Errorf("service ports %s", got)
	}
	pod := o.Deployment.Spec.Template
	if pod.Labels[gatewayapi.LabelGatewayName] != "web" || pod.Labels[inject.InjectLabel] != "false" {
		t.Errorf("pod labels %v", pod.Labels)
	}
	c := pod.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--xds-address mesh-pilot.mesh-system.svc:15012", "--xds-mtls", "--node-id router~$(POD_IP)~$(POD_NAME).$(POD_NAMESPACE)~"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if c.Image != v.ProxyImage || pod.Spec.ServiceAccountName != "web-mesh" {
		t.Errorf("image %s service account %s", c.Image, pod.Spec.ServiceAccountName)
	}
	if s := pod.Spec.SecurityContext.Sysctls; len(s) != 1 || s[0].Value != "0" {
		t.Errorf("sysctls %v: the proxy binds ports below 1024 as 1337", s)
	}

	// Istio's annotation picks the type; the default is Istio's LoadBalancer.
	gw.Annotations = map[string]string{ServiceTypeAnnotation: "NodePort"}
	if got := Build(d, v, corev1.ServiceTypeClusterIP).Service.Spec.Type; got != corev1.ServiceTypeNodePort {
		t.Errorf("annotated type %s, want NodePort", got)
	}
	gw.Annotations = nil
	if got := Build(d, v, "").Service.Spec.Type; got != corev1.ServiceTypeLoadBalancer {
		t.Errorf("default type %s, want LoadBalancer", got)
	}
}
