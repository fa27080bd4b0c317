package gatewayapi

import (
	"fmt"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// meshAttachment is a route attached to a Service (GAMMA): it configures
// the sidecars of its clients for traffic to that Service, as a
// VirtualService bound to the mesh gateway does.
type meshAttachment struct {
	route *routeState
	svc   *corev1.Service
	// port is the Service port the parentRef names (port or sectionName);
	// 0 for all of the Service's ports.
	port uint32
	// consumer: the route is in another namespace than the Service, so it
	// applies only to clients in the route's namespace, and there in place
	// of the Service's own (producer) routes.
	consumer bool
}

// attachToService attaches a route to the Service its parentRef names in
// namespace ns, and says whether it was accepted.
func (t *translator) attachToService(rs *routeState, ref gwv1.ParentReference, ns string) (*meshAttachment, bool, string, string) {
	svc := t.services[ns+"/"+string(ref.Name)]
	if svc == nil {
		return nil, false, string(gwv1.RouteReasonNoMatchingParent), fmt.Sprintf("Service %s/%s does not exist", ns, ref.Name)
	}
	ma := &meshAttachment{route: rs, svc: svc, consumer: ns != rs.meta.Namespace}
	if ref.Port != nil || ref.SectionName != nil {
		for _, p := range svc.Spec.Ports {
			if (ref.Port == nil || p.Port == *ref.Port) && (ref.SectionName == nil || p.Name == string(*ref.SectionName)) {
				ma.port = uint32(p.Port)
			}
		}
		if ma.port == 0 {
			return nil, false, string(gwv1.RouteReasonNoMatchingParent),
				fmt.Sprintf("Service %s/%s has no port matching the parentRef's port and sectionName", ns, ref.Name)
		}
	}
	if ma.consumer {
		return ma, true, string(gwv1.RouteReasonAccepted),
			fmt.Sprintf("consumer route: applies to clients in namespace %s calling Service %s/%s", rs.meta.Namespace, ns, ref.Name)
	}
	return ma, true, string(gwv1.RouteReasonAccepted), fmt.Sprintf("applies to every client of Service %s/%s", ns, ref.Name)
}

// meshGroup is the routes of one Service for one set of clients: its
// producer routes, or the consumer routes of one namespace.
type meshGroup struct {
	svc      *corev1.Service
	ns       string // the namespace the VirtualService is in
	consumer bool
	atts     []*meshAttachment
}

// emitMesh writes the routes attached to Services as VirtualServices
// bound to the mesh gateway, one per Service and set of clients, with
// the rules of all of their routes in Gateway API precedence order (one
// VirtualService per host is what a sidecar reads). Consumer routes are
// exported to their own namespace alone; producer routes to every
// namespace but those with consumer routes for the Service, where the
// consumer routes take their place.
func (t *translator) emitMesh() {
	groups := map[string]*meshGroup{}
	consumersOf := map[string][]string{} // svc ns/name: namespaces with consumer routes
	for _, ma := range t.mesh {
		svcKey := ma.svc.Namespace + "/" + ma.svc.Name
		ns := ma.svc.Namespace
		if ma.consumer {
			ns = ma.route.meta.Namespace
		}
		key := svcKey + "|" + ns
		g := groups[key]
		if g == nil {
			g = &meshGroup{svc: ma.svc, ns: ns, consumer: ma.consumer}
			groups[key] = g
			if ma.consumer {
				consumersOf[svcKey] = append(consumersOf[svcKey], ns)
			}
		}
		g.atts = append(g.atts, ma)
	}
	var keys []string
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := groups[k]
		exportTo := []string{"."}
		if !g.consumer {
			exportTo = t.producerExportTo(g.svc.Namespace, consumersOf[g.svc.Namespace+"/"+g.svc.Name])
		}
		var es []entry
		var from []string
		created := g.atts[0].route.meta.CreationTimestamp
		for _, ma := range g.atts {
			from = append(from, "gateway.networking.k8s.io/"+ma.route.kind+"/"+ma.route.meta.Namespace+"/"+ma.route.meta.Name)
			if c := ma.route.meta.CreationTimestamp; c.Before(&created) {
				created = c
			}
			for _, e := range ma.route.entries {
				if ma.port != 0 {
					// parentRef.port: the rule applies to that port of
					// the Service alone.
					e.route = cloneRoute(e.route)
					for _, m := range e.route.Match {
						m.Port = ma.port
					}
				}
				es = append(es, e)
			}
		}
		if len(es) == 0 {
			continue
		}
		sort.SliceStable(es, func(i, j int) bool { return es[i].before(es[j]) })
		vs := &networkingv1.VirtualService{
			ObjectMeta: metav1.ObjectMeta{
				Name: MeshVirtualServiceName(g.svc.Namespace, g.svc.Name), Namespace: g.ns, CreationTimestamp: created,
				Annotations: map[string]string{AnnotationGeneratedFrom: strings.Join(from, ",")},
			},
			Spec: networkingapi.VirtualService{
				Hosts:    []string{g.svc.Name + "." + g.svc.Namespace + ".svc." + t.in.DomainSuffix},
				Gateways: []string{"mesh"},
				ExportTo: exportTo,
			},
		}
		for _, e := range es {
			vs.Spec.Http = append(vs.Spec.Http, e.route)
		}
		t.out.VirtualServices = append(t.out.VirtualServices, vs)
	}
}

// producerExportTo is where a Service's producer routes apply: everywhere,
// or, when some namespaces have consumer routes for it, every namespace
// pilot knows but those.
func (t *translator) producerExportTo(svcNS string, consumers []string) []string {
	if len(consumers) == 0 || len(t.namespaces) == 0 {
		return exportEverywhere
	}
	skip := map[string]bool{}
	for _, c := range consumers {
		skip[c] = true
	}
	out := []string{}
	for ns := range t.namespaces {
		if !skip[ns] {
			out = append(out, ns)
		}
	}
	if _, ok := t.namespaces[svcNS]; !ok {
		out = append(out, svcNS)
	}
	sort.Strings(out)
	if len(out) == 0 {
		// exportTo cannot be empty (that is "everywhere"): "~" is Istio's
		// "nowhere".
		return []string{"~"}
	}
	return out
}

// MeshVirtualServiceName is the name of the VirtualService generated for
// the routes attached to Service ns/name. "~" cannot occur in Kubernetes
// names, so it never meets a user's VirtualService.
func MeshVirtualServiceName(ns, name string) string { return "mesh~" + name + "." + ns }
