package analyzers

import "testing"

const gwClassMesh = `{apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, metadata: {name: mesh}, spec: {controllerName: mesh.dev/gateway-controller}}`

func kgw(name, ns, class, listeners string) string {
	return `{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: ` + name + `, namespace: ` + ns + `}, spec: {gatewayClassName: ` + class + `, listeners: ` + listeners + `}}`
}

func TestGatewayAPIReferencesScope(t *testing.T) {
	httpListener := `[{name: http, port: 80, protocol: HTTP}]`
	// Without GatewayClasses in the snapshot (files only, the install made
	// them) a Gateway's class is not judged.
	expect(t, "no classes known", run(t, &GatewayAPIReferences{}, kgw("web", "shop", "whatever", httpListener)))
	expect(t, "class known", run(t, &GatewayAPIReferences{}, gwClassMesh, kgw("web", "shop", "mesh", httpListener)))
	expect(t, "class unknown", run(t, &GatewayAPIReferences{}, gwClassMesh, kgw("web", "shop", "nginx", httpListener)),
		"IST0101 Gateway web.shop spec.gatewayClassName")

	// An Istio Gateway of the same name is not a parent for a route, and a
	// Gateway API Gateway is not a gateway for a VirtualService.
	istioGW := `{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: web, namespace: shop}, spec: {selector: {app: gw}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}}`
	route := `{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: r, namespace: shop}, spec: {parentRefs: [{name: web}]}}`
	expect(t, "Istio Gateway is no parent", run(t, &GatewayAPIReferences{}, istioGW, route), "IST0101 HTTPRoute r.shop spec.parentRefs[0].name")
	expect(t, "Gateway API Gateway is the parent", run(t, &GatewayAPIReferences{}, kgw("web", "shop", "mesh", httpListener), route))
	vs := `{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: v, namespace: shop}, spec: {hosts: [a.example.com], gateways: [web], http: [{route: [{destination: {host: a.example.com}}]}]}}`
	se := `{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: a, namespace: shop}, spec: {hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}}`
	expect(t, "VirtualService bound to a Gateway API Gateway's name", run(t, &References{}, kgw("web", "shop", "mesh", httpListener), vs, se),
		"IST0101 VirtualService v.shop spec.gateways[0]")
}

func TestGatewayAPICertificates(t *testing.T) {
	https := `[{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: shop-cert}]}}]`
	secret := func(name string) string {
		return `{apiVersion: v1, kind: Secret, metadata: {name: ` + name + `, namespace: shop}, type: kubernetes.io/tls}`
	}
	expect(t, "no Secrets known", run(t, &GatewayAPIReferences{}, kgw("web", "shop", "mesh", https)))
	expect(t, "the Secret exists", run(t, &GatewayAPIReferences{}, kgw("web", "shop", "mesh", https), secret("shop-cert")))
	expect(t, "another Secret only", run(t, &GatewayAPIReferences{}, kgw("web", "shop", "mesh", https), secret("other")),
		"IST0161 Gateway web.shop spec.listeners[0].tls.certificateRefs[0].name")
}

func TestGatewayAPIConditionsScope(t *testing.T) {
	selector := `[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {shared-gateway: "true"}}}}}]`
	route := `{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: r, namespace: team}, spec: {parentRefs: [{name: web, namespace: infra}]}}`
	ns := func(labels string) string {
		return `{apiVersion: v1, kind: Namespace, metadata: {name: team, labels: ` + labels + `}}`
	}
	// The default class is assumed when files carry none.
	expect(t, "namespace labels unknown", run(t, &GatewayAPIConditions{}, kgw("web", "infra", "mesh", selector), route))
	expect(t, "namespace labelled", run(t, &GatewayAPIConditions{}, kgw("web", "infra", "mesh", selector), route, ns(`{shared-gateway: "true"}`)))
	expect(t, "namespace not labelled", run(t, &GatewayAPIConditions{}, kgw("web", "infra", "mesh", selector), route, ns(`{team: a}`)),
		"IST0171 HTTPRoute r.team spec.parentRefs[0]")
	// Another controller's Gateway: not translated, so nothing computed.
	other := `{apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, metadata: {name: other}, spec: {controllerName: example.com/gw}}`
	expect(t, "another controller's", run(t, &GatewayAPIConditions{}, other, kgw("web", "infra", "other", `[{name: a, port: 5432, protocol: TCP}]`)))

	// Of mesh's own Gateways only Programmed is read from the status; the
	// rest is computed.
	ours := `{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: web, namespace: infra, generation: 2}, spec: {gatewayClassName: mesh, listeners: [{name: http, port: 80, protocol: HTTP}]},
  status: {conditions: [{type: Accepted, status: "False", reason: ListenersNotValid, message: old, observedGeneration: 2, lastTransitionTime: "2026-12-01T10:00:00Z"},
    {type: Programmed, status: "False", reason: NoResources, message: waiting, observedGeneration: 2, lastTransitionTime: "2026-12-01T10:00:00Z"}]}}`
	expect(t, "ours, read Programmed", run(t, &GatewayAPIConditions{}, gwClassMesh, ours), "IST0171 Gateway web.infra status.conditions")
}
