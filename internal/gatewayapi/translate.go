package gatewayapi

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/credential"
	"mesh.dev/mesh/internal/enforced"
)

// Input is what the translation reads: the Gateway API objects and the
// parts of the cluster they refer to.
type Input struct {
	Classes    []*gwv1.GatewayClass
	Gateways   []*gwv1.Gateway
	HTTPRoutes []*gwv1.HTTPRoute
	GRPCRoutes []*gwv1.GRPCRoute
	Grants     []*gwv1.ReferenceGrant
	Namespaces []*corev1.Namespace
	Services   []*corev1.Service
	// Secrets are the Secrets a listener's certificateRefs may name, from
	// the namespaces pilot reads. SecretsRead says why a namespace's
	// Secrets are not known (nil: they are). With SecretsRead nil
	// (analyze of files) Secrets are not known, and certificateRefs are
	// checked for kind and ReferenceGrant only.
	Secrets     []*corev1.Secret
	SecretsRead func(namespace string) error
	// DomainSuffix is the cluster DNS suffix backend Services are named under.
	DomainSuffix string
}

// Output is the translation: Istio config for the model and the status of
// every Gateway API object pilot is responsible for.
type Output struct {
	Gateways        []*networkingv1.Gateway
	VirtualServices []*networkingv1.VirtualService

	// Classes are the GatewayClasses of mesh's controllers, by name.
	Classes map[string]gwv1.GatewayClassStatus
	// GatewayStatus is the status of each Gateway of those classes, by
	// namespace/name.
	GatewayStatus map[string]gwv1.GatewayStatus
	// RouteParents are the parent statuses pilot owns on each route, by
	// kind/namespace/name ("HTTPRoute/default/web").
	RouteParents map[string][]gwv1.RouteParentStatus
	// Deployments are the Gateways pilot runs a gateway proxy for.
	Deployments []Deployment
	// SecretUses are the namespaces whose Secrets the listeners of
	// mesh's Gateways name as certificateRefs, by namespace: pilot reads
	// Secrets there (and only there, its own and the install's aside).
	SecretUses map[string]*SecretUse
}

// SecretUse is why a namespace's Secrets are read: the objects in it
// that make a listener's certificateRef point there. They own the
// RoleBinding that lets pilot read them, so it goes with them.
type SecretUse struct {
	Gateways []*gwv1.Gateway        // Gateways of mesh's classes in the namespace, naming its Secrets
	Grants   []*gwv1.ReferenceGrant // ReferenceGrants in it that let another namespace's Gateway name them
}

// Deployment is one Gateway's automated deployment: what pilot creates in
// the Gateway's namespace to serve it.
type Deployment struct {
	Gateway *gwv1.Gateway
	Class   string
	Ports   []corev1.ServicePort // one per distinct listener port
}

// exportEverywhere is the exportTo of the VirtualServices the translation
// makes: they are bound to their Gateway alone, so a mesh config default
// (defaultVirtualServiceExportTo) must not hide them from it.
var exportEverywhere = []string{"*"}

// RouteKey is the key of a route in Output.RouteParents.
func RouteKey(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

type translator struct {
	in         Input
	out        *Output
	classes    map[string]*gwv1.GatewayClass
	namespaces map[string]*corev1.Namespace
	services   map[string]*corev1.Service // ns/name
	secrets    map[string]*corev1.Secret  // ns/name
	gateways   map[string]*gatewayState   // ns/name, gateways of our classes
	mesh       []*meshAttachment          // routes attached to Services, oldest route first
	// parentServices are the Service parents (ns/name) of the route being
	// translated.
	parentServices map[string]bool
}

// gatewayState is a Gateway being translated.
type gatewayState struct {
	gw        *gwv1.Gateway
	class     string
	listeners []*listenerState
	status    *gwv1.GatewayStatus
	refused   bool // not accepted for itself (addresses, parametersRef), whatever its listeners
}

// listenerState is one listener: whether it is valid, and the routes
// attached to it.
type listenerState struct {
	l gwv1.Listener
	// accepted: the listener is one mesh serves (its protocol, no
	// conflict); routes attach to it and count in attachedRoutes even when
	// its references do not resolve. valid: accepted and every reference
	// resolves, so it is programmed.
	accepted, valid bool
	kinds           []gwv1.RouteGroupKind // what routes it takes
	status          *gwv1.ListenerStatus
	routes          []*attachment
}

// attachment is one route attached to one listener, with the hostnames it
// serves there.
type attachment struct {
	route *routeState
	hosts []string
}

// routeState is an HTTPRoute or GRPCRoute with its rules translated.
type routeState struct {
	kind    string
	meta    *metav1.ObjectMeta
	entries []entry // translated rules, in rule then match order
}

// Translate turns the Gateway API objects into Istio config and status.
func Translate(in Input) *Output {
	if in.DomainSuffix == "" {
		in.DomainSuffix = "cluster.local"
	}
	t := &translator{
		in: in,
		out: &Output{
			Classes:       map[string]gwv1.GatewayClassStatus{},
			GatewayStatus: map[string]gwv1.GatewayStatus{},
			RouteParents:  map[string][]gwv1.RouteParentStatus{},
			SecretUses:    map[string]*SecretUse{},
		},
		classes:    map[string]*gwv1.GatewayClass{},
		namespaces: map[string]*corev1.Namespace{},
		services:   map[string]*corev1.Service{},
		secrets:    map[string]*corev1.Secret{},
		gateways:   map[string]*gatewayState{},
	}
	for _, ns := range in.Namespaces {
		t.namespaces[ns.Name] = ns
	}
	for _, s := range in.Services {
		t.services[s.Namespace+"/"+s.Name] = s
	}
	for _, s := range in.Secrets {
		t.secrets[s.Namespace+"/"+s.Name] = s
	}
	t.translateClasses()
	for _, gw := range sortedByAge(in.Gateways) {
		t.translateGateway(gw)
	}
	for _, r := range sortedByAge(in.HTTPRoutes) {
		t.attach("HTTPRoute", &r.ObjectMeta, r.Spec.CommonRouteSpec, r.Spec.Hostnames, enforced.Struct("HTTPRoute", &r.Spec), func(rs *routeState) []condition {
			return t.httpEntries(r, rs)
		})
	}
	for _, r := range sortedByAge(in.GRPCRoutes) {
		t.attach("GRPCRoute", &r.ObjectMeta, r.Spec.CommonRouteSpec, r.Spec.Hostnames, enforced.Struct("GRPCRoute", &r.Spec), func(rs *routeState) []condition {
			return t.grpcEntries(r, rs)
		})
	}
	t.emit()
	t.emitMesh()
	return t.out
}

func (t *translator) translateClasses() {
	for _, c := range t.in.Classes {
		if !Ours(c.Spec.ControllerName) {
			continue
		}
		t.classes[c.Name] = c
		st := gwv1.GatewayClassStatus{SupportedFeatures: SupportedFeatures()}
		setCondition(&st.Conditions, c.Generation, string(gwv1.GatewayClassConditionStatusAccepted), true,
			string(gwv1.GatewayClassReasonAccepted), fmt.Sprintf("handled by %s", c.Spec.ControllerName))
		if c.Spec.ParametersRef != nil {
			st.Conditions = nil
			setCondition(&st.Conditions, c.Generation, string(gwv1.GatewayClassConditionStatusAccepted), false,
				string(gwv1.GatewayClassReasonInvalidParameters), "mesh's GatewayClass takes no parametersRef")
			delete(t.classes, c.Name)
		}
		setCondition(&st.Conditions, c.Generation, string(gwv1.GatewayClassConditionStatusSupportedVersion), true,
			string(gwv1.GatewayClassReasonSupportedVersion), "the installed Gateway API CRDs are a version mesh supports")
		notEnforced(&st.Conditions, c.Generation, enforced.Struct("GatewayClass", &c.Spec))
		t.out.Classes[c.Name] = st
	}
}

// routeKinds are the route kinds an HTTP or HTTPS listener takes.
var routeKinds = []gwv1.RouteGroupKind{
	{Group: ptr(gwv1.Group(gwv1.GroupName)), Kind: "HTTPRoute"},
	{Group: ptr(gwv1.Group(gwv1.GroupName)), Kind: "GRPCRoute"},
}

func (t *translator) translateGateway(gw *gwv1.Gateway) {
	class := t.classes[string(gw.Spec.GatewayClassName)]
	if class == nil {
		return // another controller's Gateway, or a class mesh refused
	}
	gs := &gatewayState{gw: gw, class: class.Name, status: &gwv1.GatewayStatus{}}
	t.gateways[gw.Namespace+"/"+gw.Name] = gs
	gen := gw.Generation
	ports := map[int32]gwv1.ProtocolType{}
	hostsByPort := map[string]int{}
	for _, l := range gw.Spec.Listeners {
		ports[l.Port] = l.Protocol // the first listener's protocol wins a conflict
		hostsByPort[fmt.Sprint(l.Port, "/", hostname(l.Hostname))]++
	}
	valid := 0
	for _, l := range gw.Spec.Listeners {
		ls := &listenerState{l: l, status: &gwv1.ListenerStatus{Name: l.Name}}
		gs.listeners = append(gs.listeners, ls)
		conds := &ls.status.Conditions
		accepted, acceptedReason, acceptedMsg := true, string(gwv1.ListenerReasonAccepted), "listener accepted"
		resolved, resolvedReason, resolvedMsg := true, string(gwv1.ListenerReasonResolvedRefs), "all references resolved"
		conflicted, conflictReason := false, string(gwv1.ListenerReasonNoConflicts)
		switch {
		case l.Protocol != gwv1.HTTPProtocolType && l.Protocol != gwv1.HTTPSProtocolType:
			accepted, acceptedReason = false, string(gwv1.ListenerReasonUnsupportedProtocol)
			acceptedMsg = fmt.Sprintf("protocol %s is not supported by mesh's gateways (HTTP and HTTPS are)", l.Protocol)
		case ports[l.Port] != l.Protocol:
			conflicted, conflictReason = true, string(gwv1.ListenerReasonProtocolConflict)
		case hostsByPort[fmt.Sprint(l.Port, "/", hostname(l.Hostname))] > 1:
			conflicted, conflictReason = true, string(gwv1.ListenerReasonHostnameConflict)
		}
		// Route kinds: those of allowedRoutes mesh supports, or both.
		ls.kinds = routeKinds
		if l.AllowedRoutes != nil && len(l.AllowedRoutes.Kinds) > 0 {
			ls.kinds = nil
			for _, k := range l.AllowedRoutes.Kinds {
				if (k.Group == nil || *k.Group == gwv1.GroupName) && (k.Kind == "HTTPRoute" || k.Kind == "GRPCRoute") {
					ls.kinds = append(ls.kinds, gwv1.RouteGroupKind{Group: ptr(gwv1.Group(gwv1.GroupName)), Kind: k.Kind})
				} else {
					resolved, resolvedReason = false, string(gwv1.ListenerReasonInvalidRouteKinds)
					resolvedMsg = fmt.Sprintf("route kind %s is not supported (HTTPRoute and GRPCRoute are)", k.Kind)
				}
			}
		}
		if !accepted {
			ls.kinds = nil
		}
		ls.status.SupportedKinds = ls.kinds
		if ls.status.SupportedKinds == nil {
			ls.status.SupportedKinds = []gwv1.RouteGroupKind{}
		}
		if accepted && l.Protocol == gwv1.HTTPSProtocolType {
			if ok, reason, msg := t.listenerTLS(gw, l); !ok {
				resolved, resolvedReason, resolvedMsg = false, reason, msg
			}
			if clientValidation(gw, l.Port) {
				accepted, acceptedReason = false, "NoValidCACertificate"
				acceptedMsg = "spec.tls.frontend asks for client certificate validation on this port, which mesh's Gateway API gateways do not do yet: the listener is not served rather than served without the check"
			}
		}
		ls.accepted = accepted && !conflicted
		ls.valid = ls.accepted && resolved
		setCondition(conds, gen, string(gwv1.ListenerConditionAccepted), accepted, acceptedReason, acceptedMsg)
		setCondition(conds, gen, string(gwv1.ListenerConditionResolvedRefs), resolved, resolvedReason, resolvedMsg)
		setCondition(conds, gen, string(gwv1.ListenerConditionConflicted), conflicted, conflictReason, "")
		if ls.valid {
			valid++
			setCondition(conds, gen, string(gwv1.ListenerConditionProgrammed), true, string(gwv1.ListenerReasonProgrammed), "")
		} else {
			setCondition(conds, gen, string(gwv1.ListenerConditionProgrammed), false, string(gwv1.ListenerReasonInvalid), "the listener is not valid")
		}
	}

	// Gateway conditions. A parametersRef would customise the automated
	// deployment (Istio reads a ConfigMap); mesh reads none, so a Gateway
	// with one is refused rather than deployed without it.
	paramsRef := gw.Spec.Infrastructure != nil && gw.Spec.Infrastructure.ParametersRef != nil
	gs.refused = paramsRef || len(gw.Spec.Addresses) > 0
	switch {
	case paramsRef:
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionAccepted), false, string(gwv1.GatewayReasonInvalidParameters),
			fmt.Sprintf("spec.infrastructure.parametersRef (%s %s) is not supported: mesh's automated deployment takes no parameters", gw.Spec.Infrastructure.ParametersRef.Kind, gw.Spec.Infrastructure.ParametersRef.Name))
	case len(gw.Spec.Addresses) > 0:
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionAccepted), false, string(gwv1.GatewayReasonUnsupportedAddress),
			"spec.addresses is not supported: the gateway's address is its Service's")
	case valid < len(gw.Spec.Listeners):
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionAccepted), valid > 0, string(gwv1.GatewayReasonListenersNotValid),
			fmt.Sprintf("%d of %d listeners are not valid; see their status", len(gw.Spec.Listeners)-valid, len(gw.Spec.Listeners)))
	default:
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonAccepted), "")
	}
	notEnforced(&gs.status.Conditions, gen, enforced.Struct(enforced.GatewayAPIGateway, &gw.Spec))
	svcName := DeploymentName(gw.Name, class.Name)
	svc := t.services[gw.Namespace+"/"+svcName]
	addrs := serviceAddresses(svc)
	gs.status.Addresses = addrs
	switch {
	case paramsRef:
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid),
			"the gateway is not accepted (spec.infrastructure.parametersRef)")
	case len(gw.Spec.Addresses) > 0 || valid == 0:
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid),
			"the gateway has no valid listener to program")
	case svc == nil:
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonNoResources),
			fmt.Sprintf("waiting for Service %s/%s", gw.Namespace, svcName))
	case len(addrs) == 0:
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonAddressNotAssigned),
			fmt.Sprintf("Service %s/%s has no address yet", gw.Namespace, svcName))
	default:
		setCondition(&gs.status.Conditions, gen, string(gwv1.GatewayConditionProgrammed), true, string(gwv1.GatewayReasonProgrammed),
			fmt.Sprintf("served by Service %s/%s", gw.Namespace, svcName))
	}
	if len(gw.Spec.Addresses) == 0 && valid > 0 && !paramsRef {
		d := Deployment{Gateway: gw, Class: class.Name}
		seen := map[int32]bool{}
		for _, ls := range gs.listeners {
			if ls.valid && !seen[ls.l.Port] {
				seen[ls.l.Port] = true
				d.Ports = append(d.Ports, corev1.ServicePort{
					Name: fmt.Sprintf("%s-%d", strings.ToLower(string(ls.l.Protocol)), ls.l.Port), Port: ls.l.Port, Protocol: corev1.ProtocolTCP,
				})
			}
		}
		t.out.Deployments = append(t.out.Deployments, d)
	}
}

// serviceAddresses are the addresses a Gateway's Service gives it: the
// load balancer's when it is one, else the cluster IP.
func serviceAddresses(svc *corev1.Service) []gwv1.GatewayStatusAddress {
	if svc == nil {
		return nil
	}
	var out []gwv1.GatewayStatusAddress
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				out = append(out, gwv1.GatewayStatusAddress{Type: ptr(gwv1.IPAddressType), Value: in.IP})
			} else if in.Hostname != "" {
				out = append(out, gwv1.GatewayStatusAddress{Type: ptr(gwv1.HostnameAddressType), Value: in.Hostname})
			}
		}
		return out
	}
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, gwv1.GatewayStatusAddress{Type: ptr(gwv1.IPAddressType), Value: ip})
		}
	}
	if len(out) == 0 && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		out = append(out, gwv1.GatewayStatusAddress{Type: ptr(gwv1.IPAddressType), Value: svc.Spec.ClusterIP})
	}
	return out
}

// clientValidation reports whether the Gateway asks for client
// certificates to be validated on port: a perPort entry for the port
// decides, else the default.
func clientValidation(gw *gwv1.Gateway, port gwv1.PortNumber) bool {
	f := gw.Spec.TLS
	if f == nil || f.Frontend == nil {
		return false
	}
	for _, pp := range f.Frontend.PerPort {
		if pp.Port == port {
			return pp.TLS.Validation != nil
		}
	}
	return f.Frontend.Default.Validation != nil
}

// listenerTLS checks an HTTPS listener's TLS settings.
func (t *translator) listenerTLS(gw *gwv1.Gateway, l gwv1.Listener) (bool, string, string) {
	if l.TLS == nil || len(l.TLS.CertificateRefs) == 0 {
		return false, string(gwv1.ListenerReasonInvalidCertificateRef), "an HTTPS listener needs tls.certificateRefs"
	}
	if l.TLS.Mode != nil && *l.TLS.Mode != gwv1.TLSModeTerminate {
		return false, string(gwv1.ListenerReasonInvalidCertificateRef), "HTTPS listeners terminate TLS; Passthrough needs a TLS listener, which mesh does not support"
	}
	for _, ref := range l.TLS.CertificateRefs {
		if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
			return false, string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("certificateRef %s is not a Secret", ref.Name)
		}
		ns := gw.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		if ns != gw.Namespace {
			grant := t.grant(gwv1.GroupName, "Gateway", gw.Namespace, "", "Secret", ns, string(ref.Name))
			if grant == nil {
				return false, string(gwv1.ListenerReasonRefNotPermitted),
					fmt.Sprintf("Secret %s/%s is in another namespace and no ReferenceGrant there allows it", ns, ref.Name)
			}
			t.useSecrets(ns, nil, grant)
		} else {
			t.useSecrets(ns, gw, nil)
		}
		if t.in.SecretsRead == nil {
			continue
		}
		// The Secret itself, read as the gateway will be served it: a
		// missing or malformed one is an invalid reference (the listener
		// is not programmed rather than served without a certificate).
		if err := t.in.SecretsRead(ns); err != nil {
			return false, string(gwv1.ListenerReasonInvalidCertificateRef), "certificateRef: " + err.Error()
		}
		get := func(name string) *corev1.Secret { return t.secrets[ns+"/"+name] }
		if _, err := credential.Lookup(get, ns, string(ref.Name), false); err != nil {
			return false, string(gwv1.ListenerReasonInvalidCertificateRef), "certificateRef: " + err.Error()
		}
	}
	return true, "", ""
}

// useSecrets records that a listener names a Secret of ns, because of gw
// (in ns) or grant (in ns).
func (t *translator) useSecrets(ns string, gw *gwv1.Gateway, grant *gwv1.ReferenceGrant) {
	u := t.out.SecretUses[ns]
	if u == nil {
		u = &SecretUse{}
		t.out.SecretUses[ns] = u
	}
	if gw != nil && !slices.Contains(u.Gateways, gw) {
		u.Gateways = append(u.Gateways, gw)
	}
	if grant != nil && !slices.Contains(u.Grants, grant) {
		u.Grants = append(u.Grants, grant)
	}
}

// granted reports whether a ReferenceGrant in toNS lets objects of
// fromGroup/fromKind in fromNS refer to toGroup/toKind name.
func (t *translator) granted(fromGroup, fromKind, fromNS, toGroup, toKind, toNS, name string) bool {
	return t.grant(fromGroup, fromKind, fromNS, toGroup, toKind, toNS, name) != nil
}

// grant is the ReferenceGrant granted finds, or nil.
func (t *translator) grant(fromGroup, fromKind, fromNS, toGroup, toKind, toNS, name string) *gwv1.ReferenceGrant {
	for _, g := range t.in.Grants {
		if g.Namespace != toNS {
			continue
		}
		from := false
		for _, f := range g.Spec.From {
			if string(f.Group) == fromGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNS {
				from = true
			}
		}
		if !from {
			continue
		}
		for _, to := range g.Spec.To {
			if string(to.Group) == toGroup && string(to.Kind) == toKind && (to.Name == nil || string(*to.Name) == name) {
				return g
			}
		}
	}
	return nil
}

// attach works out a route's parents: the listeners it attaches to, with
// the status of each parentRef pilot is responsible for; findings are the
// route's set fields the mesh does not carry out.
func (t *translator) attach(kind string, meta *metav1.ObjectMeta, spec gwv1.CommonRouteSpec, hostnames []gwv1.Hostname,
	findings []enforced.Finding, translate func(*routeState) []condition) {
	rs := &routeState{kind: kind, meta: meta}
	// A route's own Service parents may be its backends without a
	// ReferenceGrant: a consumer route naming the Service it routes for
	// (GAMMA's consumer override) needs no permission from the producer.
	t.parentServices = map[string]bool{}
	for _, ref := range spec.ParentRefs {
		if group, pkind, ns := parentKey(ref, meta.Namespace); group == "" && pkind == "Service" {
			t.parentServices[ns+"/"+string(ref.Name)] = true
		}
	}
	problems := translate(rs)
	t.parentServices = nil
	var parents []gwv1.RouteParentStatus
	for _, ref := range spec.ParentRefs {
		group, pkind, ns := parentKey(ref, meta.Namespace)
		ps := gwv1.RouteParentStatus{ParentRef: ref, ControllerName: ControllerName}
		var accepted bool
		var reason, msg string
		switch {
		case group == "" && pkind == "Service":
			// GAMMA: a route attached to a Service configures sidecars
			// for traffic to it.
			var ma *meshAttachment
			ma, accepted, reason, msg = t.attachToService(rs, ref, ns)
			if accepted && len(problems) > 0 && problems[0].accepted != nil {
				accepted, reason, msg = false, problems[0].reason, problems[0].message
			}
			if accepted {
				t.mesh = append(t.mesh, ma)
			}
		case group == gwv1.GroupName && pkind == "Gateway":
			gs := t.gateways[ns+"/"+string(ref.Name)]
			if gs == nil {
				continue // not a Gateway of mesh's classes: its controller reports
			}
			ps.ControllerName = t.classes[gs.class].Spec.ControllerName
			accepted, reason, msg = t.attachToGateway(rs, gs, ref, hostnames)
			if accepted && len(problems) > 0 && problems[0].accepted != nil {
				accepted, reason, msg = false, problems[0].reason, problems[0].message
			}
		default:
			continue
		}
		setCondition(&ps.Conditions, meta.Generation, string(gwv1.RouteConditionAccepted), accepted, reason, msg)
		resolved, rreason, rmsg := true, string(gwv1.RouteReasonResolvedRefs), "all references resolved"
		for _, p := range problems {
			if p.accepted == nil {
				resolved, rreason, rmsg = false, p.reason, p.message
				break
			}
		}
		setCondition(&ps.Conditions, meta.Generation, string(gwv1.RouteConditionResolvedRefs), resolved, rreason, rmsg)
		notEnforced(&ps.Conditions, meta.Generation, findings)
		parents = append(parents, ps)
	}
	if parents != nil {
		t.out.RouteParents[RouteKey(kind, meta.Namespace, meta.Name)] = parents
	}
}

// parentKey is a parentRef's group, kind and namespace with their defaults.
func parentKey(ref gwv1.ParentReference, routeNS string) (group, kind, ns string) {
	group, kind, ns = gwv1.GroupName, "Gateway", routeNS
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return group, kind, ns
}

// attachToGateway attaches a route to the listeners of gs its parentRef
// selects, and says whether it was accepted.
func (t *translator) attachToGateway(rs *routeState, gs *gatewayState, ref gwv1.ParentReference, hostnames []gwv1.Hostname) (bool, string, string) {
	// A Gateway refused as a whole takes no routes; one whose listeners
	// are all invalid still does, listener by listener (its listeners
	// count them in attachedRoutes).
	if gs.refused {
		return false, string(gwv1.RouteReasonNoMatchingParent), "the Gateway is not accepted"
	}
	matched, allowed := 0, 0
	var attached []*listenerState
	for _, ls := range gs.listeners {
		if ref.SectionName != nil && *ref.SectionName != ls.l.Name {
			continue
		}
		if ref.Port != nil && *ref.Port != ls.l.Port {
			continue
		}
		matched++
		if !ls.accepted || !t.allows(ls, gs.gw, rs) {
			continue
		}
		allowed++
		hosts := intersect(hostnames, ls.l.Hostname)
		if len(hosts) == 0 {
			continue
		}
		ls.routes = append(ls.routes, &attachment{route: rs, hosts: hosts})
		attached = append(attached, ls)
	}
	// A listener counts the routes it accepts, as the conformance suite
	// reads attachedRoutes: not those whose hostnames it does not serve.
	for _, ls := range attached {
		ls.status.AttachedRoutes++
	}
	switch {
	case matched == 0:
		return false, string(gwv1.RouteReasonNoMatchingParent), "no listener matches the parentRef's sectionName and port"
	case allowed == 0:
		return false, string(gwv1.RouteReasonNotAllowedByListeners), "no listener allows this route (allowedRoutes)"
	case len(attached) == 0:
		return false, string(gwv1.RouteReasonNoMatchingListenerHostname), "no listener hostname matches the route's hostnames"
	}
	return true, string(gwv1.RouteReasonAccepted), fmt.Sprintf("attached to %d listener(s)", len(attached))
}

// allows applies a listener's allowedRoutes to a route.
func (t *translator) allows(ls *listenerState, gw *gwv1.Gateway, rs *routeState) bool {
	kindOK := false
	for _, k := range ls.kinds {
		if string(k.Kind) == rs.kind {
			kindOK = true
		}
	}
	if !kindOK {
		return false
	}
	from := gwv1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if ar := ls.l.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
		sel = ar.Namespaces.Selector
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return rs.meta.Namespace == gw.Namespace
	case gwv1.NamespacesFromSelector:
		s, err := metav1.LabelSelectorAsSelector(sel)
		ns := t.namespaces[rs.meta.Namespace]
		return err == nil && sel != nil && ns != nil && s.Matches(labels.Set(ns.Labels))
	}
	return false
}

// intersect returns the hostnames a route serves on a listener: the
// route's hostnames the listener's admits (a wildcard of the route's
// narrowed to the listener's), or the listener's own when the route names
// none.
func intersect(route []gwv1.Hostname, listener *gwv1.Hostname) []string {
	lh := "*"
	if listener != nil && *listener != "" {
		lh = string(*listener)
	}
	if len(route) == 0 {
		return []string{lh}
	}
	var out []string
	for _, h := range route {
		rh := string(h)
		switch {
		case lh == "*" || rh == lh:
			out = append(out, rh)
		case covers(lh, rh):
			out = append(out, rh)
		case covers(rh, lh):
			out = append(out, lh)
		}
	}
	return dedupe(out)
}

// covers reports whether the wildcard hostname w ("*.example.com", or "*")
// matches host h (a wildcard matches one or more labels).
func covers(w, h string) bool {
	if w == "*" {
		return true
	}
	if !strings.HasPrefix(w, "*.") {
		return false
	}
	suffix := w[1:]
	return strings.HasSuffix(h, suffix) && len(h) > len(suffix) && !strings.HasPrefix(h, "*.") ||
		strings.HasPrefix(h, "*.") && strings.HasSuffix(h[1:], suffix) && len(h) > len(w)
}

func hostname(h *gwv1.Hostname) string {
	if h == nil {
		return ""
	}
	return string(*h)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// emit writes the Istio config: one Gateway per valid listener, and per
// listener and hostname one VirtualService with the rules of every route
// serving that hostname there (a wildcard route's too), in Gateway API
// precedence order.
func (t *translator) emit() {
	var keys []string
	for k := range t.gateways {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		gs := t.gateways[k]
		from := "gateway.networking.k8s.io/Gateway/" + gs.gw.Namespace + "/" + gs.gw.Name
		for _, ls := range gs.listeners {
			gs.status.Listeners = append(gs.status.Listeners, *ls.status)
			if !ls.valid || len(gs.gw.Spec.Addresses) > 0 || gs.gw.Spec.Infrastructure != nil && gs.gw.Spec.Infrastructure.ParametersRef != nil {
				continue
			}
			name := ListenerGatewayName(gs.gw.Name, ls.l.Name)
			server := &networkingapi.Server{
				Name:  string(ls.l.Name),
				Port:  &networkingapi.Port{Number: uint32(ls.l.Port), Name: string(ls.l.Name), Protocol: string(ls.l.Protocol)},
				Hosts: []string{"*/" + orStar(hostname(ls.l.Hostname))},
			}
			if ls.l.Protocol == gwv1.HTTPSProtocolType {
				ref := ls.l.TLS.CertificateRefs[0]
				cred := string(ref.Name)
				if ref.Namespace != nil && string(*ref.Namespace) != gs.gw.Namespace {
					// Another namespace's Secret, allowed by a
					// ReferenceGrant (listenerTLS): a name only
					// generated Gateways may use (model.GatewayServerCredential).
					cred = credential.CrossNamespaceName(string(*ref.Namespace), cred)
				}
				server.Tls = &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_SIMPLE, CredentialName: cred}
			}
			t.out.Gateways = append(t.out.Gateways, &networkingv1.Gateway{
				ObjectMeta: metav1.ObjectMeta{
					Name: name, Namespace: gs.gw.Namespace, CreationTimestamp: gs.gw.CreationTimestamp,
					Annotations: map[string]string{AnnotationGeneratedFrom: from, AnnotationSameNamespace: "true"},
				},
				Spec: networkingapi.Gateway{
					Selector: map[string]string{LabelGatewayName: gs.gw.Name},
					Servers:  []*networkingapi.Server{server},
				},
			})
			t.out.VirtualServices = append(t.out.VirtualServices, t.listenerRoutes(gs, ls, name)...)
		}
		t.out.GatewayStatus[k] = *gs.status
	}
}

func orStar(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// narrower are the hostnames of the other programmed listeners of ls's
// port that are more specific than its own: requests for them belong to
// those listeners (listener isolation), however ls's routes name hosts.
func narrower(gs *gatewayState, ls *listenerState) []string {
	own := orStar(hostname(ls.l.Hostname))
	var out []string
	for _, o := range gs.listeners {
		h := orStar(hostname(o.l.Hostname))
		if o == ls || !o.valid || o.l.Port != ls.l.Port || h == own || !covers(own, h) {
			continue
		}
		out = append(out, h)
	}
	return out
}

// overlapped reports whether another programmed listener of ls's port
// has a wider hostname than ls, whose routes would otherwise answer for
// the hosts of ls's hostname.
func overlapped(gs *gatewayState, ls *listenerState) bool {
	for _, o := range gs.listeners {
		if o != ls && o.valid && o.l.Port == ls.l.Port && slices.Contains(narrower(gs, o), orStar(hostname(ls.l.Hostname))) {
			return true
		}
	}
	return false
}

// isolated reports whether a route's hostname h on a listener belongs to
// one of the listener's narrower siblings instead.
func isolated(h string, narrower []string) bool {
	for _, n := range narrower {
		if h == n || covers(n, h) {
			return true
		}
	}
	return false
}

// listenerRoutes builds the VirtualServices of one listener. The
// listeners of one port share its route table, where the most specific
// host wins, so a listener is isolated from its port's more specific
// listeners (GatewayHTTPListenerIsolation): its routes leave out the
// hostnames those listeners serve, and a more specific listener has a
// host of its own hostname even when no route of its names it, answering
// 404 there rather than letting a request fall through to a less
// specific listener's routes.
func (t *translator) listenerRoutes(gs *gatewayState, ls *listenerState, gwName string) []*networkingv1.VirtualService {
	var hosts []string
	claimed := narrower(gs, ls)
	for _, a := range ls.routes {
		for _, h := range a.hosts {
			if !isolated(h, claimed) {
				hosts = append(hosts, h)
			}
		}
	}
	hosts = dedupe(hosts)
	sort.Strings(hosts)
	var out []*networkingv1.VirtualService
	own := orStar(hostname(ls.l.Hostname))
	if own != "*" && !slices.Contains(hosts, own) && overlapped(gs, ls) {
		out = append(out, &networkingv1.VirtualService{
			ObjectMeta: metav1.ObjectMeta{
				Name: gwName + "~" + own, Namespace: gs.gw.Namespace, CreationTimestamp: gs.gw.CreationTimestamp,
				Annotations: map[string]string{AnnotationGeneratedFrom: "gateway.networking.k8s.io/Gateway/" + gs.gw.Namespace + "/" + gs.gw.Name},
			},
			Spec: networkingapi.VirtualService{Hosts: []string{own}, Gateways: []string{gs.gw.Namespace + "/" + gwName}, ExportTo: exportEverywhere,
				Http: []*networkingapi.HTTPRoute{{Name: "listener-isolation", DirectResponse: &networkingapi.HTTPDirectResponse{Status: 404}}}},
		})
	}
	for _, h := range hosts {
		var es []entry
		for _, a := range ls.routes {
			for _, rh := range a.hosts {
				if rh == h || covers(rh, h) {
					es = append(es, a.route.entries...)
					break
				}
			}
		}
		if len(es) == 0 {
			continue
		}
		sort.SliceStable(es, func(i, j int) bool { return es[i].before(es[j]) })
		vs := &networkingv1.VirtualService{
			ObjectMeta: metav1.ObjectMeta{
				Name: gwName + "~" + h, Namespace: gs.gw.Namespace, CreationTimestamp: gs.gw.CreationTimestamp,
				Annotations: map[string]string{AnnotationGeneratedFrom: "gateway.networking.k8s.io/Gateway/" + gs.gw.Namespace + "/" + gs.gw.Name},
			},
			Spec: networkingapi.VirtualService{Hosts: []string{h}, Gateways: []string{gs.gw.Namespace + "/" + gwName}, ExportTo: exportEverywhere},
		}
		for _, e := range es {
			vs.Spec.Http = append(vs.Spec.Http, e.route)
		}
		out = append(out, vs)
	}
	return out
}

func sortedByAge[T metav1.Object](in []T) []T {
	out := append([]T(nil), in...)
	sort.SliceStable(out, func(i, j int) bool { return olderFirst(out[i], out[j]) })
	return out
}

func olderFirst(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.GetNamespace()+"/"+a.GetName() < b.GetNamespace()+"/"+b.GetName()
}

func ptr[T any](v T) *T { return &v }
