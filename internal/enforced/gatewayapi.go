package enforced

import (
	"reflect"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GatewayAPIGateway is the kind key of the Gateway API's Gateway, which
// would otherwise share "Gateway" with Istio's; analyze files Gateway API
// Gateways under the same key.
const GatewayAPIGateway = "Gateway." + gwv1.GroupName

// The Gateway API kinds pilot reads (internal/gatewayapi translates them),
// walked as Go types by JSON name like mesh's own kinds.
func init() {
	Types["GatewayClass"] = reflect.TypeOf(gwv1.GatewayClassSpec{})
	Types[GatewayAPIGateway] = reflect.TypeOf(gwv1.GatewaySpec{})
	Types["HTTPRoute"] = reflect.TypeOf(gwv1.HTTPRouteSpec{})
	Types["GRPCRoute"] = reflect.TypeOf(gwv1.GRPCRouteSpec{})
	Types["ReferenceGrant"] = reflect.TypeOf(gwv1.ReferenceGrantSpec{})
	for kind, entries := range gatewayAPITable() {
		table[kind] = entries
	}
}

// Notes of the parts the translation refuses out loud: the object, rule
// or listener gets a negative condition (IST0171 in analyze), so nothing
// that sets them is served as if they held. Enforced in the table's sense:
// never dropped silently.
const (
	refusedFilter  = "refused: the rule is not accepted (Accepted False, UnsupportedValue): mesh does not run this filter"
	refusedSession = "refused: the rule is not accepted (Accepted False, UnsupportedValue): mesh does not keep sessions"
	refusedParams  = "refused: mesh's classes and automated deployments take no parameters (Accepted False)"
	refusedAddress = "refused: the Gateway is not accepted (UnsupportedAddress): its address is its Service's"
	refusedClient  = "refused, failing closed: mesh does not validate client certificates at Gateway API gateways yet, so the HTTPS listeners this covers are not served (Accepted False, NoValidCACertificate) rather than served without the check"
	noDefaultGW    = "default Gateways are not carried out: a route attaches only to its parentRefs, and no route is attached by scope"
)

// gatewayAPITable classifies the fields of the Gateway API kinds. Whole
// parts that are refused are classified leaf by leaf from their Go type,
// so a field a new version adds under them is refused with them.
func gatewayAPITable() map[string]map[string]Entry {
	yes := Entry{Enforced: true}
	t := map[string]map[string]Entry{
		"GatewayClass": {
			"spec.controllerName": yes,
			"spec.description":    {Enforced: true, Note: "shown, not acted on"},
		},
		GatewayAPIGateway: {
			"spec.gatewayClassName":                        yes,
			"spec.infrastructure.labels":                   {Enforced: true, Note: "set on the automated deployment's objects"},
			"spec.infrastructure.annotations":              {Enforced: true, Note: "set on the automated deployment's objects"},
			"spec.listeners.name":                          yes,
			"spec.listeners.hostname":                      yes,
			"spec.listeners.port":                          yes,
			"spec.listeners.protocol":                      {Enforced: true, Note: "HTTP and HTTPS; other protocols make the listener not accepted (UnsupportedProtocol)"},
			"spec.listeners.tls.mode":                      {Enforced: true, Note: "Terminate; Passthrough makes an HTTPS listener not accepted"},
			"spec.listeners.tls.options":                   {Note: "TLS options are not read: the listener uses mesh's TLS defaults"},
			"spec.listeners.allowedRoutes.kinds.group":     yes,
			"spec.listeners.allowedRoutes.kinds.kind":      yes,
			"spec.listeners.allowedRoutes.namespaces.from": yes,
			"spec.allowedListeners":                        {Note: "mesh does not read ListenerSets: none attaches, whatever this allows"},
			"spec.defaultScope":                            {Note: noDefaultGW},
			"spec.tls.backend":                             {Note: "the gateway presents no client certificate of the Gateway's own to backends (mesh's workload certificate is used where the backend is in the mesh)"},
		},
		"ReferenceGrant": {
			"spec.from.group":     yes,
			"spec.from.kind":      yes,
			"spec.from.namespace": yes,
			"spec.to.group":       yes,
			"spec.to.kind":        yes,
			"spec.to.name":        yes,
		},
	}
	gw := t[GatewayAPIGateway]
	for _, p := range []string{"group", "kind", "name", "namespace"} {
		gw["spec.listeners.tls.certificateRefs."+p] = yes
	}
	leavesAs(gw, "spec.listeners.allowedRoutes.namespaces.selector", reflect.TypeOf(gwv1.RouteNamespaces{}.Selector).Elem(), yes)
	leavesAs(gw, "spec.addresses", reflect.TypeOf(gwv1.GatewaySpecAddress{}), Entry{Enforced: true, Note: refusedAddress})
	leavesAs(gw, "spec.infrastructure.parametersRef", reflect.TypeOf(gwv1.LocalParametersReference{}), Entry{Enforced: true, Note: refusedParams})
	leavesAs(gw, "spec.tls.frontend", reflect.TypeOf(gwv1.FrontendTLSConfig{}), Entry{Enforced: true, Note: refusedClient})
	leavesAs(t["GatewayClass"], "spec.parametersRef", reflect.TypeOf(gwv1.ParametersReference{}), Entry{Enforced: true, Note: refusedParams})

	for _, kind := range []string{"HTTPRoute", "GRPCRoute"} {
		r := map[string]Entry{
			"spec.hostnames":          yes,
			"spec.useDefaultGateways": {Note: noDefaultGW},
			"spec.rules.name":         yes,
		}
		leavesAs(r, "spec.parentRefs", reflect.TypeOf(gwv1.ParentReference{}), Entry{Enforced: true, Note: "Gateways of mesh's classes, and Services (GAMMA): a Service parent configures the sidecars of its clients for traffic to it (on parentRef.port alone when set), for every client from the Service's namespace (producer route) or for clients in the route's namespace alone (consumer route)"})
		leavesAs(r, "spec.rules.backendRefs", reflect.TypeOf(gwv1.BackendObjectReference{}), Entry{Enforced: true, Note: "Services; other kinds are unresolved (InvalidKind)"})
		r["spec.rules.backendRefs.weight"] = yes
		leavesAs(r, "spec.rules.sessionPersistence", reflect.TypeOf(gwv1.SessionPersistence{}), Entry{Enforced: true, Note: refusedSession})
		t[kind] = r
	}

	h := t["HTTPRoute"]
	for _, at := range []string{"spec.rules.filters", "spec.rules.backendRefs.filters"} {
		h[at+".type"] = yes
		leavesAs(h, at+".requestHeaderModifier", reflect.TypeOf(gwv1.HTTPHeaderFilter{}), yes)
		leavesAs(h, at+".responseHeaderModifier", reflect.TypeOf(gwv1.HTTPHeaderFilter{}), yes)
		leavesAs(h, at+".cors", reflect.TypeOf(gwv1.HTTPCORSFilter{}), Entry{Enforced: true, Note: refusedFilter})
		leavesAs(h, at+".externalAuth", reflect.TypeOf(gwv1.HTTPExternalAuthFilter{}), Entry{Enforced: true, Note: refusedFilter})
		leavesAs(h, at+".extensionRef", reflect.TypeOf(gwv1.LocalObjectReference{}), Entry{Enforced: true, Note: refusedFilter})
	}
	// Mirrors, rewrites and redirects are rule filters; on a backendRef
	// they are refused.
	leavesAs(h, "spec.rules.filters.requestMirror", reflect.TypeOf(gwv1.HTTPRequestMirrorFilter{}), yes)
	leavesAs(h, "spec.rules.filters.urlRewrite", reflect.TypeOf(gwv1.HTTPURLRewriteFilter{}), yes)
	leavesAs(h, "spec.rules.filters.requestRedirect", reflect.TypeOf(gwv1.HTTPRequestRedirectFilter{}), yes)
	leavesAs(h, "spec.rules.backendRefs.filters.requestMirror", reflect.TypeOf(gwv1.HTTPRequestMirrorFilter{}), Entry{Enforced: true, Note: refusedFilter})
	leavesAs(h, "spec.rules.backendRefs.filters.urlRewrite", reflect.TypeOf(gwv1.HTTPURLRewriteFilter{}), Entry{Enforced: true, Note: refusedFilter})
	leavesAs(h, "spec.rules.backendRefs.filters.requestRedirect", reflect.TypeOf(gwv1.HTTPRequestRedirectFilter{}), Entry{Enforced: true, Note: refusedFilter})
	leavesAs(h, "spec.rules.matches", reflect.TypeOf(gwv1.HTTPRouteMatch{}), yes)
	leavesAs(h, "spec.rules.timeouts", reflect.TypeOf(gwv1.HTTPRouteTimeouts{}), yes)
	h["spec.rules.retry.attempts"] = Entry{Enforced: true, Note: "unset: 2, as Istio's default"}
	h["spec.rules.retry.codes"] = Entry{Enforced: true, Note: "retried besides connection failures and refused streams"}
	h["spec.rules.retry.backoff"] = Entry{Enforced: true, Note: "the base interval of the proxy's jittered exponential backoff"}

	g := t["GRPCRoute"]
	for _, at := range []string{"spec.rules.filters", "spec.rules.backendRefs.filters"} {
		g[at+".type"] = yes
		leavesAs(g, at+".requestHeaderModifier", reflect.TypeOf(gwv1.HTTPHeaderFilter{}), yes)
		leavesAs(g, at+".responseHeaderModifier", reflect.TypeOf(gwv1.HTTPHeaderFilter{}), yes)
		leavesAs(g, at+".extensionRef", reflect.TypeOf(gwv1.LocalObjectReference{}), Entry{Enforced: true, Note: refusedFilter})
	}
	leavesAs(g, "spec.rules.filters.requestMirror", reflect.TypeOf(gwv1.HTTPRequestMirrorFilter{}), yes)
	leavesAs(g, "spec.rules.backendRefs.filters.requestMirror", reflect.TypeOf(gwv1.HTTPRequestMirrorFilter{}), Entry{Enforced: true, Note: refusedFilter})
	leavesAs(g, "spec.rules.matches", reflect.TypeOf(gwv1.GRPCRouteMatch{}), yes)
	return t
}

// leavesAs classifies every leaf of the struct type typ, at path, as e.
func leavesAs(entries map[string]Entry, path string, typ reflect.Type, e Entry) {
	var paths []string
	structLeaves(typ, path, map[reflect.Type]bool{}, &paths)
	for _, p := range paths {
		entries[p] = e
	}
}
