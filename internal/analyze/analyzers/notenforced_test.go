package analyzers

import (
	"strings"
	"testing"
)

func TestNotEnforced(t *testing.T) {
	ap := func(name, action, rule string) string {
		return `{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: ` + name + `, namespace: default}, spec: {action: ` + action + `, rules: [` + rule + `]}}`
	}
	ra := `{apiVersion: security.istio.io/v1, kind: RequestAuthentication, metadata: {name: jwt, namespace: default}, spec: {jwtRules: [{issuer: "https://issuer.example"}]}}`

	expect(t, "RequestAuthentication", run(t, &NotEnforced{}, ra))
	expect(t, "ALLOW on Envoy filter metadata", run(t, &NotEnforced{},
		ap("admins", "ALLOW", `{when: [{key: "experimental.envoy.filters.x[y]", values: [admin]}]}`)),
		"MSH0003 AuthorizationPolicy admins.default spec.rules[0].when[0].key")
	expect(t, "ALLOW on JWT claims and request principals", run(t, &NotEnforced{},
		ap("jwt", "ALLOW", `{from: [{source: {requestPrincipals: ["*"]}}], when: [{key: "request.auth.claims[groups]", values: [admin]}]}`)))
	expect(t, "ALLOW the mesh enforces", run(t, &NotEnforced{},
		ap("ns", "ALLOW", `{from: [{source: {namespaces: [default]}}], when: [{key: "request.headers[x-team]", values: [a]}]}`)))
	// A DENY rule the mesh translates in part denies more, not less; still
	// the condition is not what decides, and the user is told.
	expect(t, "DENY on Envoy filter metadata", run(t, &NotEnforced{},
		ap("deny", "DENY", `{when: [{key: "experimental.envoy.filters.x[y]", values: [guest]}]}`)),
		"MSH0003 AuthorizationPolicy deny.default spec.rules[0].when[0].key")
	expect(t, "service accounts are enforced", run(t, &NotEnforced{},
		ap("sa", "ALLOW", `{from: [{source: {serviceAccounts: [bookinfo-productpage, other/x]}}]}`)))
	expect(t, "malformed value", run(t, &NotEnforced{},
		ap("port", "ALLOW", `{to: [{operation: {ports: [http]}}]}`)),
		"MSH0003 AuthorizationPolicy port.default spec.rules[0].to[0].operation.ports")
	// CUSTOM is carried out through ext_authz; a provider the mesh config
	// does not have is reported (the workload denies every request).
	expect(t, "CUSTOM, provider unknown", run(t, &NotEnforced{},
		ap("ext", "CUSTOM", `{}`)),
		"MSH0003 AuthorizationPolicy ext.default spec.provider.name")

	got := texts(t, &NotEnforced{}, ap("admins", "ALLOW", `{when: [{key: "experimental.envoy.filters.x[y]", values: [admin]}]}`))
	if len(got) != 1 || !strings.Contains(got[0], "spec.rules[0].when[0].key is not enforced: experimental.envoy.filters.x[y]") || !strings.Contains(got[0], "allows nobody") {
		t.Errorf("text %q does not say which condition and what happens", got)
	}

	expect(t, "delegate and CORS", run(t, &NotEnforced{}, svcReviews,
		vs("reviews", `{hosts: [reviews], http: [{delegate: {name: reviews-routes}}, {corsPolicy: {allowOrigins: [{exact: "https://a.example"}]}, route: [{destination: {host: reviews}}]}]}`)),
		"MSH0003 VirtualService reviews.default spec.http[0].delegate", "MSH0003 VirtualService reviews.default spec.http[1].corsPolicy")
	expect(t, "plain routes", run(t, &NotEnforced{}, svcReviews, depReviews, drReviews,
		vs("reviews", `{hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}`)))

	// mesh's own MetaRoute, walked by its Go type's JSON names.
	mr := func(spec string) string {
		return `{apiVersion: networking.mesh.io/v1alpha1, kind: MetaRoute, metadata: {name: rpc, namespace: default}, spec: ` + spec + `}`
	}
	expect(t, "MetaRoute mirror", run(t, &NotEnforced{}, svcReviews,
		mr(`{hosts: [reviews], routes: [{match: {attributes: {method: {exact: Get}}}, route: [{destination: {host: reviews}}], timeout: 1s}, {route: [{destination: {host: reviews}}], mirror: {host: reviews}, mirrorPercentage: {value: 5}}]}`)),
		"MSH0003 MetaRoute rpc.default spec.routes[1].mirror", "MSH0003 MetaRoute rpc.default spec.routes[1].mirrorPercentage")
	expect(t, "MetaRoute carried out", run(t, &NotEnforced{}, svcReviews,
		mr(`{hosts: [reviews], routes: [{match: {attributes: {method: {prefix: Get}, x-tenant: {regex: "a.*"}}}, route: [{destination: {host: reviews, port: {number: 9080}}, weight: 100}], retries: {attempts: 1, retryOn: reset}}]}`)))

	// The Gateway API kinds, walked by their Go types (inline parts, such
	// as a route's parentRefs, at their parent's path).
	gw := `{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: web, namespace: default}, spec: {gatewayClassName: mesh, allowedListeners: {namespaces: {from: All}},
	  listeners: [{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}], options: {example.com/cipher: x}}}]}}`
	route := func(rule string) string {
		return `{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: web, namespace: default}, spec: {parentRefs: [{name: web, sectionName: https}], useDefaultGateways: All, rules: [` + rule + `]}}`
	}
	expect(t, "Gateway API parts not carried out", run(t, &NotEnforced{}, svcReviews, gw,
		route(`{backendRefs: [{name: reviews, port: 9080, weight: 1}], retry: {attempts: 2, codes: [503]}, timeouts: {request: 1s}}`)),
		"MSH0003 Gateway web.default spec.allowedListeners", "MSH0003 Gateway web.default spec.listeners[0].tls.options",
		"MSH0003 HTTPRoute web.default spec.useDefaultGateways")
	expect(t, "Gateway API carried out", run(t, &NotEnforced{}, svcReviews,
		`{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: web, namespace: default}, spec: {parentRefs: [{name: web}], hostnames: [a.example], rules: [{matches: [{path: {type: PathPrefix, value: /a}, headers: [{name: x, value: y}]}], filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}], backendRefs: [{name: reviews, port: 9080}]}]}}`))
}

// TestProxyConfigAnnotationNotCarriedOut: of a pod template's
// proxy.istio.io/config, the fields the injector does not act on are
// MSH0003; those it acts on are not; a value that does not parse is
// IST0125 (the injector refuses such a pod).
func TestProxyConfigAnnotationNotCarriedOut(t *testing.T) {
	dep := func(config string) string {
		return `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: default}, spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}, annotations: {proxy.istio.io/config: "` + config + `"}}, spec: {containers: [{name: web, image: x}]}}}}`
	}
	expect(t, "carried out", run(t, &NotEnforced{}, dep(`{holdApplicationUntilProxyStarts: true, terminationDrainDuration: 10s, concurrency: 2, proxyMetadata: {A: b}}`)))
	expect(t, "not carried out", run(t, &NotEnforced{}, dep(`{holdApplicationUntilProxyStarts: true, tracing: {sampling: 1}, statNameLength: 100}`)),
		`MSH0003 Deployment web.default spec.template.metadata.annotations["proxy.istio.io/config"].statNameLength`,
		`MSH0003 Deployment web.default spec.template.metadata.annotations["proxy.istio.io/config"].tracing`)
	// DNS proxying is carried out (the agent answers DNS, pilot sends the name table).
	expect(t, "DNS proxying", run(t, &NotEnforced{}, dep(`{proxyMetadata: {ISTIO_META_DNS_CAPTURE: 'true', ISTIO_META_DNS_AUTO_ALLOCATE: 'true', A: b}}`)))
	expect(t, "misspelt", run(t, &Annotations{}, dep(`{holdApplicationUntilProxyStart: true}`)),
		`IST0125 Deployment web.default spec.template.metadata.annotations["proxy.istio.io/config"]`)
}
