package analyzers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/gatewayapi"
)

// GatewayAPIConditions reports IST0171 NegativeConditionStatus for
// Kubernetes Gateway API objects, two ways:
//
//   - computed: the snapshot goes through the translation pilot runs
//     (internal/gatewayapi), and the negative conditions it would write on
//     the Gateways and route parents of mesh's classes are reported, so
//     a CI run over files sees a listener conflict or a route no listener
//     accepts before anything is applied. Conditions that follow from
//     others (a Gateway's ListenersNotValid, a listener's Programmed) and
//     those only the running cluster decides (a Gateway's Programmed:
//     its Service and address) are left out, and the unresolved
//     references IST0101 reports (BackendNotFound, RefNotPermitted) too.
//   - read, as istioctl does: the negative Accepted, Programmed and
//     ResolvedRefs conditions (and a listener's Conflicted) in the status
//     of the objects read, when that status is for the object's current
//     generation. For the objects the translation judges, only what it
//     leaves to the cluster (Programmed) is read.
type GatewayAPIConditions struct{}

// Metadata describes the analyzer.
func (*GatewayAPIConditions) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "k8sgateway.ConditionAnalyzer",
		Description: "Reports the negative status conditions Gateway API objects have, or will get from mesh-pilot",
		Codes:       []*analyze.MessageType{analyze.NegativeConditionStatus}}
}

// byIST0101 are the reasons whose conditions IST0101 already reports.
var byIST0101 = map[string]bool{
	string(gwv1.RouteReasonBackendNotFound): true,
	string(gwv1.RouteReasonRefNotPermitted): true,
}

// Analyze runs the check.
func (*GatewayAPIConditions) Analyze(ctx *analyze.Context) {
	gateways := ctx.ByKind(analyze.GatewayAPIGatewayKind)
	routes := ctx.ByKind("HTTPRoute")
	routes = append(routes[:len(routes):len(routes)], ctx.ByKind("GRPCRoute")...)
	if len(gateways) == 0 && len(routes) == 0 {
		return
	}
	in := gatewayapi.Input{DomainSuffix: analyze.DomainSuffix}
	for _, r := range ctx.ByKind("GatewayClass") {
		if c, ok := r.Object.(*gwv1.GatewayClass); ok {
			in.Classes = append(in.Classes, c)
		}
	}
	if len(in.Classes) == 0 {
		// Files seldom carry the GatewayClass, which the install makes:
		// judge them as the default profile's class would.
		in.Classes = []*gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: gatewayapi.ClassName},
			Spec: gwv1.GatewayClassSpec{ControllerName: gatewayapi.ControllerName}}}
	}
	gwRes := map[string]*analyze.Resource{}
	for _, r := range gateways {
		if g, ok := r.Object.(*gwv1.Gateway); ok {
			in.Gateways = append(in.Gateways, g)
			gwRes[r.Namespace+"/"+r.Name] = r
		}
	}
	for _, r := range routes {
		switch o := r.Object.(type) {
		case *gwv1.HTTPRoute:
			in.HTTPRoutes = append(in.HTTPRoutes, o)
		case *gwv1.GRPCRoute:
			in.GRPCRoutes = append(in.GRPCRoutes, o)
		}
	}
	for _, r := range ctx.ByKind("ReferenceGrant") {
		if g, ok := r.Object.(*gwv1.ReferenceGrant); ok {
			in.Grants = append(in.Grants, g)
		}
	}
	for _, r := range ctx.ByKind("Namespace") {
		if n, ok := r.Object.(*corev1.Namespace); ok {
			in.Namespaces = append(in.Namespaces, n)
		}
	}
	for _, s := range ctx.Services() {
		in.Services = append(in.Services, s.Service)
	}
	out := gatewayapi.Translate(in)

	for _, r := range ctx.ByKind("GatewayClass") {
		for _, c := range out.Classes[r.Name].Conditions {
			if c.Type == string(gwv1.GatewayClassConditionStatusAccepted) && c.Status == metav1.ConditionFalse {
				reportCondition(ctx, r, "spec", c, true)
			}
		}
	}
	for _, r := range gateways {
		gw, ok := r.Object.(*gwv1.Gateway)
		if !ok {
			continue
		}
		st, ours := out.GatewayStatus[r.Namespace+"/"+r.Name]
		if ours {
			for _, c := range st.Conditions {
				if c.Type == string(gwv1.GatewayConditionAccepted) && c.Status == metav1.ConditionFalse && c.Reason == string(gwv1.GatewayReasonUnsupportedAddress) {
					reportCondition(ctx, r, "spec.addresses", c, true)
				}
			}
			for _, ls := range st.Listeners {
				field := listenerField(gw, ls.Name)
				for _, c := range ls.Conditions {
					if byIST0101[c.Reason] {
						continue
					}
					switch {
					case c.Type == string(gwv1.ListenerConditionAccepted) && c.Status == metav1.ConditionFalse,
						c.Type == string(gwv1.ListenerConditionResolvedRefs) && c.Status == metav1.ConditionFalse,
						c.Type == string(gwv1.ListenerConditionConflicted) && c.Status == metav1.ConditionTrue:
						reportCondition(ctx, r, field, c, true)
					}
				}
			}
		}
		// What the cluster says.
		for _, c := range gw.Status.Conditions {
			if current(c, gw.Generation) && negative(c) && (!ours || c.Type == string(gwv1.GatewayConditionProgrammed)) {
				reportCondition(ctx, r, "status.conditions", c, false)
			}
		}
		if !ours {
			for i, ls := range gw.Status.Listeners {
				for _, c := range ls.Conditions {
					if current(c, gw.Generation) && negative(c) {
						reportCondition(ctx, r, fmt.Sprintf("status.listeners[%d].conditions", i), c, false)
					}
				}
			}
		}
	}
	for _, r := range routes {
		var spec gwv1.CommonRouteSpec
		var status gwv1.RouteStatus
		var gen int64
		switch o := r.Object.(type) {
		case *gwv1.HTTPRoute:
			spec, status, gen = o.Spec.CommonRouteSpec, o.Status.RouteStatus, o.Generation
		case *gwv1.GRPCRoute:
			spec, status, gen = o.Spec.CommonRouteSpec, o.Status.RouteStatus, o.Generation
		default:
			continue
		}
		judged := map[int]bool{} // parentRefs the translation judged
		for _, ps := range out.RouteParents[gatewayapi.RouteKey(r.Kind, r.Namespace, r.Name)] {
			i := parentIndex(spec.ParentRefs, ps.ParentRef)
			judged[i] = true
			field := "spec.parentRefs"
			if i >= 0 {
				field = fmt.Sprintf("spec.parentRefs[%d]", i)
			}
			for _, c := range ps.Conditions {
				if c.Status != metav1.ConditionFalse || byIST0101[c.Reason] {
					continue
				}
				if c.Reason == string(gwv1.RouteReasonNotAllowedByListeners) && ctx.Namespace(r.Namespace) == nil && selectsNamespaces(gwRes, r.Namespace, ps.ParentRef) {
					continue // a listener selects namespaces by labels the snapshot does not have
				}
				reportCondition(ctx, r, field, c, true)
			}
		}
		for i, ps := range status.Parents {
			if j := parentIndex(spec.ParentRefs, ps.ParentRef); j >= 0 && judged[j] {
				continue // the translation says what pilot says now
			}
			for _, c := range ps.Conditions {
				if current(c, gen) && negative(c) && !byIST0101[c.Reason] {
					reportCondition(ctx, r, fmt.Sprintf("status.parents[%d].conditions", i), c, false)
				}
			}
		}
	}
}

// reportCondition reports one condition; computed ones are those the
// translation would set, the others were read from the object's status.
func reportCondition(ctx *analyze.Context, r *analyze.Resource, field string, c metav1.Condition, computed bool) {
	where := "is present"
	if computed {
		where = "will be set by mesh-pilot"
	}
	ctx.Report(analyze.NegativeConditionStatus, r, field, "A condition with a negative status %s: type=%s, reason=%s, message=%s", where, c.Type, c.Reason, c.Message)
}

// negative reports whether a condition read from a status shows a
// problem: Accepted, Programmed or ResolvedRefs False, or Conflicted True.
func negative(c metav1.Condition) bool {
	switch c.Type {
	case "Accepted", "Programmed", "ResolvedRefs":
		return c.Status == metav1.ConditionFalse
	case "Conflicted":
		return c.Status == metav1.ConditionTrue
	}
	return false
}

// current reports whether a condition is about the object's current
// generation; an older one describes a spec that has since changed.
func current(c metav1.Condition, gen int64) bool {
	return c.ObservedGeneration == 0 || gen == 0 || c.ObservedGeneration >= gen
}

// listenerField is the path of the listener named name.
func listenerField(gw *gwv1.Gateway, name gwv1.SectionName) string {
	for i, l := range gw.Spec.Listeners {
		if l.Name == name {
			return fmt.Sprintf("spec.listeners[%d]", i)
		}
	}
	return "spec.listeners"
}

// parentIndex finds a status's parentRef among the route's (-1 when it
// is not one of them).
func parentIndex(refs []gwv1.ParentReference, p gwv1.ParentReference) int {
	key := func(r gwv1.ParentReference) string {
		return fmt.Sprint(deref(r.Group), "/", deref(r.Kind), "/", deref(r.Namespace), "/", r.Name, "/", deref(r.SectionName), "/", deref(r.Port))
	}
	for i, r := range refs {
		if key(r) == key(p) {
			return i
		}
	}
	return -1
}

func deref[T any](p *T) any {
	if p == nil {
		return ""
	}
	return *p
}

// selectsNamespaces reports whether a listener of the Gateway a parentRef
// names admits routes by namespace labels.
func selectsNamespaces(gateways map[string]*analyze.Resource, routeNS string, p gwv1.ParentReference) bool {
	ns := routeNS
	if p.Namespace != nil && *p.Namespace != "" {
		ns = string(*p.Namespace)
	}
	r := gateways[ns+"/"+string(p.Name)]
	if r == nil {
		return false
	}
	gw, _ := r.Object.(*gwv1.Gateway)
	if gw == nil {
		return false
	}
	for _, l := range gw.Spec.Listeners {
		if l.AllowedRoutes != nil && l.AllowedRoutes.Namespaces != nil && l.AllowedRoutes.Namespaces.From != nil &&
			*l.AllowedRoutes.Namespaces.From == gwv1.NamespacesFromSelector {
			return true
		}
	}
	return false
}
