// Package pilottest builds model inputs for pilot's generation tests and
// benchmarks from YAML manifests, the way the cluster would: Deployments
// become pods with addresses in 198.18.0.0/16 and Services get EndpointSlices
// for the pods they select.
package pilottest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/pilot/model"
)

// World accumulates objects; Input derives pods' endpoints from it.
type World struct {
	In        model.Input
	Namespace string // default namespace for objects without one
	nextIP    int
	deploys   []*appsv1.Deployment
}

// NewWorld starts an empty world whose objects default to namespace ns.
func NewWorld(ns string) *World {
	w := &World{Namespace: ns}
	w.AddNamespace(ns, nil)
	return w
}

// AddNamespace adds a namespace with labels.
func (w *World) AddNamespace(name string, lbls map[string]string) {
	for _, n := range w.In.Namespaces {
		if n.Name == name {
			return
		}
	}
	w.In.Namespaces = append(w.In.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}})
}

// NextIP hands out pod addresses from 198.18.0.0/16.
func (w *World) NextIP() string {
	w.nextIP++
	return fmt.Sprintf("198.18.%d.%d", w.nextIP/250, w.nextIP%250+1)
}

// AddFile adds every object of a multi-document YAML file.
func (w *World) AddFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := w.AddYAML(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// AddYAML adds every object of a multi-document YAML stream.
func (w *World) AddYAML(data []byte) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if err := w.addDoc(doc); err != nil {
			return fmt.Errorf("document %d: %w", i+1, err)
		}
	}
}

func (w *World) addDoc(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var obj metav1.Object
	var add func()
	kind := tm.Kind
	if strings.HasPrefix(tm.APIVersion, "gateway.networking.k8s.io/") {
		kind = "gateway-api " + kind // its Gateway is not Istio's
	}
	switch kind {
	case "gateway-api GatewayClass":
		o := &gwv1.GatewayClass{}
		obj, add = o, func() { w.In.GatewayClasses = replace(w.In.GatewayClasses, o) }
	case "gateway-api Gateway":
		o := &gwv1.Gateway{}
		obj, add = o, func() { w.In.KubeGateways = replace(w.In.KubeGateways, o) }
	case "gateway-api HTTPRoute":
		o := &gwv1.HTTPRoute{}
		obj, add = o, func() { w.In.HTTPRoutes = replace(w.In.HTTPRoutes, o) }
	case "gateway-api GRPCRoute":
		o := &gwv1.GRPCRoute{}
		obj, add = o, func() { w.In.GRPCRoutes = replace(w.In.GRPCRoutes, o) }
	case "gateway-api ReferenceGrant":
		o := &gwv1.ReferenceGrant{}
		obj, add = o, func() { w.In.ReferenceGrants = replace(w.In.ReferenceGrants, o) }
	case "Service":
		o := &corev1.Service{}
		obj, add = o, func() { w.In.Services = replace(w.In.Services, o) }
	case "EndpointSlice":
		// Written by hand, as for a Service without a selector.
		o := &discoveryv1.EndpointSlice{}
		obj, add = o, func() { w.In.EndpointSlices = replace(w.In.EndpointSlices, o) }
	case "Pod":
		o := &corev1.Pod{}
		obj, add = o, func() { w.In.Pods = replace(w.In.Pods, o) }
	case "Secret":
		o := &corev1.Secret{}
		obj, add = o, func() { w.In.Secrets = replace(w.In.Secrets, o) }
	case "Namespace":
		o := &corev1.Namespace{}
		obj, add = o, func() { w.In.Namespaces = replace(w.In.Namespaces, o) }
	case "Deployment":
		o := &appsv1.Deployment{}
		obj, add = o, func() { w.deploys = append(w.deploys, o) }
	case "VirtualService":
		o := &networkingv1.VirtualService{}
		obj, add = o, func() { w.In.VirtualServices = replace(w.In.VirtualServices, o) }
	case "DestinationRule":
		o := &networkingv1.DestinationRule{}
		obj, add = o, func() { w.In.DestinationRules = replace(w.In.DestinationRules, o) }
	case "Gateway":
		o := &networkingv1.Gateway{}
		obj, add = o, func() { w.In.Gateways = replace(w.In.Gateways, o) }
	case "ServiceEntry":
		o := &networkingv1.ServiceEntry{}
		obj, add = o, func() { w.In.ServiceEntries = replace(w.In.ServiceEntries, o) }
	case "Sidecar":
		o := &networkingv1.Sidecar{}
		obj, add = o, func() { w.In.Sidecars = replace(w.In.Sidecars, o) }
	case "WorkloadEntry":
		o := &networkingv1.WorkloadEntry{}
		obj, add = o, func() { w.In.WorkloadEntries = replace(w.In.WorkloadEntries, o) }
	case "PeerAuthentication":
		o := &securityv1.PeerAuthentication{}
		obj, add = o, func() { w.In.PeerAuthentications = replace(w.In.PeerAuthentications, o) }
	case "AuthorizationPolicy":
		o := &securityv1.AuthorizationPolicy{}
		obj, add = o, func() { w.In.AuthorizationPolicies = replace(w.In.AuthorizationPolicies, o) }
	case "RequestAuthentication":
		o := &securityv1.RequestAuthentication{}
		obj, add = o, func() { w.In.RequestAuthentications = replace(w.In.RequestAuthentications, o) }
	case "Telemetry":
		o := &telemetryv1.Telemetry{}
		obj, add = o, func() { w.In.Telemetries = replace(w.In.Telemetries, o) }
	case "MetaRoute":
		o := &meshnet.MetaRoute{}
		obj, add = o, func() { w.In.MetaRoutes = replace(w.In.MetaRoutes, o) }
	default:
		return nil // ServiceAccounts and the like do not matter to pilot
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if obj.GetNamespace() == "" && !clusterScoped[kind] {
		obj.SetNamespace(w.Namespace)
	}
	add()
	return nil
}

// clusterScoped are the kinds of addDoc that live in no namespace.
var clusterScoped = map[string]bool{"Namespace": true, "gateway-api GatewayClass": true}

// replace adds o, replacing an object of the same namespace and name (as
// kubectl apply would).
func replace[T metav1.Object](list []T, o T) []T {
	for i, x := range list {
		if x.GetNamespace() == o.GetNamespace() && x.GetName() == o.GetName() {
			out := append([]T(nil), list...)
			out[i] = o
			return out
		}
	}
	return append(list, o)
}

// Input materialises deployments as pods (labelled as injected, so auto
// mTLS applies) and services as EndpointSlices.
func (w *World) Input() model.Input {
	in := w.In
	in.Pods = append([]*corev1.Pod(nil), in.Pods...)
	for _, d := range w.deploys {
		n := 1
		if d.Spec.Replicas != nil {
			n = int(*d.Spec.Replicas)
		}
		for i := 0; i < n; i++ {
			lbls := map[string]string{model.TLSModeLabel: "istio"}
			for k, v := range d.Spec.Template.Labels {
				lbls[k] = v
			}
			in.Pods = append(in.Pods, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", d.Name, i), Namespace: d.Namespace, Labels: lbls},
				Spec:       d.Spec.Template.Spec,
				Status:     corev1.PodStatus{PodIP: w.NextIP(), Phase: corev1.PodRunning},
			})
		}
	}
	w.deploys = nil
	w.In.Pods = in.Pods
	in.EndpointSlices = append(SlicesFor(in.Services, in.Pods), w.In.EndpointSlices...)
	return in
}

// SlicesFor builds the EndpointSlice the endpointslice controller would
// write for each service.
func SlicesFor(svcs []*corev1.Service, pods []*corev1.Pod) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	byNS := map[string][]*corev1.Pod{}
	for _, p := range pods {
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: s.Name + "-x", Namespace: s.Namespace, Labels: map[string]string{discoveryv1.LabelServiceName: s.Name}},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		for _, p := range s.Spec.Ports {
			name, port := p.Name, p.TargetPort.IntVal
			if port == 0 {
				port = p.Port
			}
			es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port})
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		for _, pod := range byNS[s.Namespace] {
			if !sel.Matches(labels.Set(pod.Labels)) || pod.Status.PodIP == "" {
				continue
			}
			ready := true
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{pod.Status.PodIP},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: pod.Name, Namespace: pod.Namespace},
			})
		}
		out = append(out, es)
	}
	return out
}

// PodProxy returns the node id of the (first) pod whose name starts with prefix.
func (w *World) PodProxy(t model.ProxyType, prefix string) string {
	for _, p := range w.In.Pods {
		if strings.HasPrefix(p.Name, prefix) {
			return model.NodeID(t, p.Status.PodIP, p.Name, p.Namespace)
		}
	}
	return ""
}

// Delete removes the object of kind (as the Input field's element type
// names it, e.g. "VirtualService") in ns named name, as kubectl delete
// would; it reports whether there was one. Deployments are not Input
// objects and cannot be deleted here.
func (w *World) Delete(kind, ns, name string) bool {
	in := reflect.ValueOf(&w.In).Elem()
	for i := 0; i < in.NumField(); i++ {
		f := in.Field(i)
		if f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Pointer || f.Type().Elem().Elem().Name() != kind {
			continue
		}
		for j := 0; j < f.Len(); j++ {
			o, ok := f.Index(j).Interface().(metav1.Object)
			if ok && o.GetNamespace() == ns && o.GetName() == name {
				out := reflect.AppendSlice(reflect.MakeSlice(f.Type(), 0, f.Len()-1), f.Slice(0, j))
				f.Set(reflect.AppendSlice(out, f.Slice(j+1, f.Len())))
				return true
			}
		}
	}
	return false
}
