package analyzers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/analyze"
)

// GatewayAPIReferences reports Kubernetes Gateway API references that do
// not resolve, as IST0101 does for Istio's kinds: a route's parentRefs
// (Gateways, or Services for GAMMA) and backendRefs (Services and their
// ports), a Gateway's GatewayClass, and references into another namespace
// that no ReferenceGrant there allows (the referring object then behaves
// as if the target did not exist: a route's rule answers 500, an HTTPS
// listener is not programmed). A listener's certificateRefs naming no
// Secret are IST0161, judged, as for Istio Gateways, only when the
// snapshot holds Secrets of that namespace.
type GatewayAPIReferences struct{}

// Metadata describes the analyzer.
func (*GatewayAPIReferences) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "k8sgateway.ReferenceAnalyzer",
		Description: "Checks that the Gateways, Services, GatewayClasses and Secrets Gateway API objects refer to exist and that ReferenceGrants allow the references across namespaces",
		Codes:       []*analyze.MessageType{analyze.ReferencedResourceNotFound, analyze.InvalidGatewayCredential}}
}

// gatewayAPIRefs is what the reference checks look things up in.
type gatewayAPIRefs struct {
	ctx      *analyze.Context
	services map[string]*corev1.Service // namespace/name
	gateways map[string]bool            // namespace/name of Gateway API Gateways
	secrets  map[string]bool            // namespace/name
	secretNS map[string]bool            // namespaces holding any Secret
	grants   []*gwv1.ReferenceGrant
}

// Analyze runs the checks.
func (*GatewayAPIReferences) Analyze(ctx *analyze.Context) {
	routes := ctx.ByKind("HTTPRoute")
	routes = append(routes[:len(routes):len(routes)], ctx.ByKind("GRPCRoute")...)
	gateways := ctx.ByKind(analyze.GatewayAPIGatewayKind)
	if len(routes) == 0 && len(gateways) == 0 {
		return
	}
	c := &gatewayAPIRefs{ctx: ctx, services: map[string]*corev1.Service{}, gateways: map[string]bool{},
		secrets: map[string]bool{}, secretNS: map[string]bool{}}
	for _, s := range ctx.Services() {
		c.services[s.Namespace+"/"+s.Name] = s.Service
	}
	for _, g := range gateways {
		c.gateways[g.Namespace+"/"+g.Name] = true
	}
	for _, s := range ctx.ByKind("Secret") {
		if s.Group == "" {
			c.secrets[s.Namespace+"/"+s.Name] = true
			c.secretNS[s.Namespace] = true
		}
	}
	for _, g := range ctx.ByKind("ReferenceGrant") {
		if rg, ok := g.Object.(*gwv1.ReferenceGrant); ok {
			c.grants = append(c.grants, rg)
		}
	}
	classes := map[string]bool{}
	for _, r := range ctx.ByKind("GatewayClass") {
		classes[r.Name] = true
	}
	for _, r := range gateways {
		gw, ok := r.Object.(*gwv1.Gateway)
		if !ok {
			continue
		}
		// GatewayClasses are cluster-wide and made by the install, not
		// kept with the configuration: judged only when some are known.
		if len(classes) > 0 && !classes[string(gw.Spec.GatewayClassName)] {
			ctx.Report(analyze.ReferencedResourceNotFound, r, "spec.gatewayClassName",
				"Referenced GatewayClass not found: %q (the GatewayClasses known are %s), so no controller serves this Gateway", gw.Spec.GatewayClassName, quotedSet(classes))
		}
		for i, l := range gw.Spec.Listeners {
			if l.TLS == nil {
				continue
			}
			for j, ref := range l.TLS.CertificateRefs {
				if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
					continue // not a Secret: the listener's ResolvedRefs says so (IST0171)
				}
				ns := r.Namespace
				if ref.Namespace != nil && *ref.Namespace != "" {
					ns = string(*ref.Namespace)
				}
				field := fmt.Sprintf("spec.listeners[%d].tls.certificateRefs[%d]", i, j)
				if ns != r.Namespace && !c.granted("Gateway", r.Namespace, "", "Secret", ns, string(ref.Name)) {
					ctx.Report(analyze.ReferencedResourceNotFound, r, field+".namespace",
						"Referenced ReferenceGrant not found: no ReferenceGrant in namespace %q lets Gateways of %q use Secret %q, so listener %q is not programmed",
						ns, r.Namespace, string(ref.Name), l.Name)
					continue
				}
				if c.secretNS[ns] && !c.secrets[ns+"/"+string(ref.Name)] {
					ctx.Report(analyze.InvalidGatewayCredential, r, field+".name",
						"The credential referenced by the Gateway %s in namespace %s is invalid, which can cause the traffic not to work as expected: Secret %q does not exist in namespace %q, so listener %q has no certificate",
						r.Name, r.Namespace, string(ref.Name), ns, l.Name)
				}
			}
		}
	}
	for _, r := range routes {
		var spec gwv1.CommonRouteSpec
		var backends []backendAt
		switch o := r.Object.(type) {
		case *gwv1.HTTPRoute:
			spec, backends = o.Spec.CommonRouteSpec, httpBackends(o)
		case *gwv1.GRPCRoute:
			spec, backends = o.Spec.CommonRouteSpec, grpcBackends(o)
		default:
			continue
		}
		for i, p := range spec.ParentRefs {
			c.parent(r, fmt.Sprintf("spec.parentRefs[%d]", i), p)
		}
		for _, b := range backends {
			c.backend(r, b.field, b.ref)
		}
	}
}

// parent checks one parentRef.
func (c *gatewayAPIRefs) parent(r *analyze.Resource, field string, p gwv1.ParentReference) {
	group, kind := gwv1.GroupName, "Gateway"
	if p.Group != nil {
		group = string(*p.Group)
	}
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	ns := r.Namespace
	if p.Namespace != nil && *p.Namespace != "" {
		ns = string(*p.Namespace)
	}
	key := ns + "/" + string(p.Name)
	switch {
	case group == gwv1.GroupName && kind == "Gateway":
		if !c.gateways[key] {
			c.ctx.Report(analyze.ReferencedResourceNotFound, r, field+".name", "Referenced gateway not found: %q, so the route is attached to nothing there", key)
		}
	case group == "" && kind == "Service":
		if c.services[key] == nil {
			c.ctx.Report(analyze.ReferencedResourceNotFound, r, field+".name", "Referenced host not found: Service %q", key)
		}
	}
}

// backend checks one backendRef (or a mirror filter's).
func (c *gatewayAPIRefs) backend(r *analyze.Resource, field string, b gwv1.BackendObjectReference) {
	if (b.Group != nil && *b.Group != "") || (b.Kind != nil && *b.Kind != "Service") {
		return // another kind: the route's ResolvedRefs says so (IST0171)
	}
	ns := r.Namespace
	if b.Namespace != nil && *b.Namespace != "" {
		ns = string(*b.Namespace)
	}
	key := ns + "/" + string(b.Name)
	if ns != r.Namespace && !c.granted(r.Kind, r.Namespace, "", "Service", ns, string(b.Name)) {
		c.ctx.Report(analyze.ReferencedResourceNotFound, r, field+".namespace",
			"Referenced ReferenceGrant not found: no ReferenceGrant in namespace %q lets %ss of %q refer to Service %q, so the backend is not used",
			ns, r.Kind, r.Namespace, string(b.Name))
		return
	}
	svc := c.services[key]
	if svc == nil {
		c.ctx.Report(analyze.ReferencedResourceNotFound, r, field+".name", "Referenced host not found: Service %q", key)
		return
	}
	if b.Port == nil {
		return // required by the CRD's validation; the route's ResolvedRefs says so
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		if p.Port == *b.Port {
			return
		}
		ports = append(ports, strconv.Itoa(int(p.Port)))
	}
	c.ctx.Report(analyze.ReferencedResourceNotFound, r, field+".port", "Referenced port not found: Service %q has no port %d (it has %s)", key, *b.Port, strings.Join(ports, ", "))
}

// granted reports whether a ReferenceGrant in toNS lets fromKind objects
// of fromNS refer to toGroup/toKind name.
func (c *gatewayAPIRefs) granted(fromKind, fromNS, toGroup, toKind, toNS, name string) bool {
	for _, g := range c.grants {
		if g.Namespace != toNS {
			continue
		}
		from := false
		for _, f := range g.Spec.From {
			if string(f.Group) == gwv1.GroupName && string(f.Kind) == fromKind && string(f.Namespace) == fromNS {
				from = true
			}
		}
		if !from {
			continue
		}
		for _, to := range g.Spec.To {
			if string(to.Group) == toGroup && string(to.Kind) == toKind && (to.Name == nil || string(*to.Name) == name) {
				return true
			}
		}
	}
	return false
}

// backendAt is a backend reference with the path of its field.
type backendAt struct {
	field string
	ref   gwv1.BackendObjectReference
}

func httpBackends(r *gwv1.HTTPRoute) []backendAt {
	var out []backendAt
	mirrors := func(prefix string, fs []gwv1.HTTPRouteFilter) {
		for k, f := range fs {
			if f.RequestMirror != nil {
				out = append(out, backendAt{fmt.Sprintf("%s.filters[%d].requestMirror.backendRef", prefix, k), f.RequestMirror.BackendRef})
			}
		}
	}
	for i, rule := range r.Spec.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		for j, b := range rule.BackendRefs {
			bp := fmt.Sprintf("%s.backendRefs[%d]", p, j)
			out = append(out, backendAt{bp, b.BackendObjectReference})
			mirrors(bp, b.Filters)
		}
		mirrors(p, rule.Filters)
	}
	return out
}

func grpcBackends(r *gwv1.GRPCRoute) []backendAt {
	var out []backendAt
	mirrors := func(prefix string, fs []gwv1.GRPCRouteFilter) {
		for k, f := range fs {
			if f.RequestMirror != nil {
				out = append(out, backendAt{fmt.Sprintf("%s.filters[%d].requestMirror.backendRef", prefix, k), f.RequestMirror.BackendRef})
			}
		}
	}
	for i, rule := range r.Spec.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		for j, b := range rule.BackendRefs {
			bp := fmt.Sprintf("%s.backendRefs[%d]", p, j)
			out = append(out, backendAt{bp, b.BackendObjectReference})
			mirrors(bp, b.Filters)
		}
		mirrors(p, rule.Filters)
	}
	return out
}

// quotedSet lists a set's members, sorted and quoted.
func quotedSet(set map[string]bool) string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, strconv.Quote(n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
