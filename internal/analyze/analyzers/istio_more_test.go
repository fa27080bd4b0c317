package analyzers

import "testing"

// Fixtures written from Istio's description of each message: what the
// user wrote, and whether the message must appear.

func pa(name, ns, selector, mode string) string {
	sel := ""
	if selector != "" {
		sel = `selector: {matchLabels: ` + selector + `}, `
	}
	return `{apiVersion: security.istio.io/v1, kind: PeerAuthentication, metadata: {name: ` + name + `, namespace: ` + ns + `}, spec: {` + sel + `mtls: {mode: ` + mode + `}}}`
}

func drTLS(name, host, tls string) string {
	return `{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: ` + name + `, namespace: default}, spec: {host: ` + host + `, trafficPolicy: {tls: ` + tls + `}}}`
}

func TestMTLSConflicts(t *testing.T) {
	expect(t, "agree", run(t, &MTLSConflicts{}, svcReviews, depReviews, pa("strict", "default", "", "STRICT"), drTLS("r", "reviews", `{mode: ISTIO_MUTUAL}`)))
	expect(t, "no policy", run(t, &MTLSConflicts{}, svcReviews, depReviews, drTLS("r", "reviews", `{mode: DISABLE}`)))
	expect(t, "plaintext to STRICT namespace", run(t, &MTLSConflicts{}, svcReviews, depReviews, pa("strict", "default", "", "STRICT"), drTLS("r", "reviews", `{mode: DISABLE}`)),
		"IST0113 DestinationRule r.default spec.trafficPolicy.tls.mode")
	expect(t, "mesh-wide STRICT from the root namespace", run(t, &MTLSConflicts{}, svcReviews, depReviews, pa("default", "mesh-system", "", "STRICT"), drTLS("r", "reviews", `{mode: SIMPLE}`)),
		"IST0113 DestinationRule r.default spec.trafficPolicy.tls.mode")
	expect(t, "workload policy wins over the namespace's", run(t, &MTLSConflicts{}, svcReviews, depReviews,
		pa("strict", "default", "", "STRICT"), pa("open", "default", `{app: reviews}`, "PERMISSIVE"), drTLS("r", "reviews", `{mode: DISABLE}`)))
	expect(t, "mTLS to DISABLE", run(t, &MTLSConflicts{}, svcReviews, depReviews, pa("off", "default", `{app: reviews}`, "DISABLE"), drTLS("r", "reviews", `{mode: ISTIO_MUTUAL}`)),
		"IST0113 DestinationRule r.default spec.trafficPolicy.tls.mode")
}

func TestServerVerification(t *testing.T) {
	expect(t, "verified or mesh", run(t, &ServerVerification{},
		drTLS("a", "api.example.com", `{mode: SIMPLE, caCertificates: /etc/certs/ca.pem}`),
		drTLS("b", "api.example.com", `{mode: SIMPLE, credentialName: api-ca}`),
		drTLS("c", "reviews", `{mode: ISTIO_MUTUAL}`),
		drTLS("d", "api.example.com", `{mode: SIMPLE, insecureSkipVerify: true}`)))
	expect(t, "unverified", run(t, &ServerVerification{}, drTLS("a", "api.example.com", `{mode: SIMPLE}`),
		`{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: p}, spec: {host: db.example.com, trafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: ISTIO_MUTUAL}}, {port: {number: 8443}, tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k}}]}}}`),
		"IST0128 DestinationRule a.default spec.trafficPolicy.tls.caCertificates",
		"IST0129 DestinationRule p.default spec.trafficPolicy.portLevelSettings[1].tls.caCertificates")
}

func TestInjectionLabels(t *testing.T) {
	ns := func(name, labels string) string {
		return `{apiVersion: v1, kind: Namespace, metadata: {name: ` + name + `, labels: ` + labels + `}}`
	}
	expect(t, "one kind each", run(t, &InjectionLabels{}, ns("a", `{istio-injection: enabled}`), ns("b", `{istio.io/rev: canary}`), ns("c", `{mesh-injection: enabled, istio-injection: enabled}`)))
	expect(t, "both kinds", run(t, &InjectionLabels{}, ns("a", `{istio-injection: enabled, istio.io/rev: canary}`), ns("b", `{mesh-injection: disabled, mesh.io/rev: stable}`)),
		"IST0123 Namespace a metadata.labels", "IST0123 Namespace b metadata.labels")
}

func TestImageAuto(t *testing.T) {
	ns := func(name, labels string) string {
		return `{apiVersion: v1, kind: Namespace, metadata: {name: ` + name + `, labels: ` + labels + `}}`
	}
	dep := func(ns, tmplLabels string) string {
		return `{apiVersion: apps/v1, kind: Deployment, metadata: {name: gw, namespace: ` + ns + `}, spec: {selector: {matchLabels: {app: gw}}, template: {metadata: {labels: ` + tmplLabels + `}, spec: {containers: [{name: istio-proxy, image: auto}]}}}}`
	}
	pod := `{apiVersion: v1, kind: Pod, metadata: {name: gw-1, namespace: plain, labels: {app: gw}}, spec: {containers: [{name: istio-proxy, image: auto}]}}`
	expect(t, "injected namespace, pod opt-in, unknown namespace", run(t, &ImageAuto{},
		ns("meshed", `{mesh-injection: enabled}`), dep("meshed", `{app: gw}`), dep("unknown", `{app: gw}`),
		ns("plain", `{}`), `{apiVersion: apps/v1, kind: Deployment, metadata: {name: opt, namespace: plain}, spec: {template: {metadata: {labels: {sidecar.istio.io/inject: "true"}}, spec: {containers: [{name: p, image: auto}]}}}}`))
	expect(t, "not targeted", run(t, &ImageAuto{}, ns("plain", `{}`), dep("plain", `{app: gw}`), pod,
		ns("meshed", `{mesh-injection: enabled}`), dep("meshed", `{app: gw, sidecar.istio.io/inject: "false"}`)),
		"IST0146 Deployment gw.plain spec.template.spec.containers[0].image",
		"IST0146 Deployment gw.meshed spec.template.spec.containers[0].image",
		"IST0147 Pod gw-1.plain spec.containers[0].image")
}

func TestExternalNamePorts(t *testing.T) {
	svc := func(typ, ports string) string {
		return `{apiVersion: v1, kind: Service, metadata: {name: ext}, spec: {type: ` + typ + `, externalName: api.example.com, ports: ` + ports + `}}`
	}
	expect(t, "named for a protocol, or not ExternalName", run(t, &ExternalNamePorts{},
		svc("ExternalName", `[{name: https, port: 443}, {name: db, port: 5432, appProtocol: http}]`), svc("ClusterIP", `[{name: tcp, port: 5432}]`)))
	expect(t, "tcp and unnamed", run(t, &ExternalNamePorts{}, svc("ExternalName", `[{name: tcp-db, port: 5432}, {name: db, port: 5433}]`)),
		"IST0150 Service ext.default spec.ports[0].name", "IST0150 Service ext.default spec.ports[1].name")
}

func TestGatewayCredentials(t *testing.T) {
	ingress := `{apiVersion: apps/v1, kind: Deployment, metadata: {name: ingress, namespace: mesh-system}, spec: {template: {metadata: {labels: {istio: ingressgateway}}, spec: {containers: [{name: mesh-proxy, image: x}]}}}}`
	secret := func(name string) string {
		return `{apiVersion: v1, kind: Secret, metadata: {name: ` + name + `, namespace: mesh-system}, type: kubernetes.io/tls}`
	}
	gw := func(name, cred, host string) string {
		return `{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: ` + name + `}, spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["` + host + `"], tls: {mode: SIMPLE, credentialName: ` + cred + `}}]}}`
	}
	expect(t, "own certificates, secrets present", run(t, &GatewayCredentials{}, ingress, secret("a-cert"), secret("b-cert"),
		gw("a", "a-cert", "a.example.com"), gw("b", "b-cert", "b.example.com")))
	expect(t, "no Secrets in the snapshot: not judged", run(t, &GatewayCredentials{}, ingress, gw("a", "a-cert", "a.example.com")))
	expect(t, "missing secret, shared certificate", run(t, &GatewayCredentials{}, ingress, secret("a-cert"),
		gw("a", "a-cert", "a.example.com"), gw("b", "a-cert", "b.example.com"), gw("c", "c-cert", "c.example.com")),
		"IST0138 Gateway a.default spec.servers[0].tls.credentialName",
		"IST0138 Gateway b.default spec.servers[0].tls.credentialName",
		"IST0161 Gateway c.default spec.servers[0].tls.credentialName")
	// A Secret with its data is judged as pilot judges it: a key that is
	// no certificate is reported, one that is passes.
	junk := `{apiVersion: v1, kind: Secret, metadata: {name: a-cert, namespace: mesh-system}, type: kubernetes.io/tls, stringData: {tls.crt: junk, tls.key: junk}}`
	expect(t, "malformed secret", run(t, &GatewayCredentials{}, ingress, junk, gw("a", "a-cert", "a.example.com")),
		"IST0161 Gateway a.default spec.servers[0].tls.credentialName")
	// A DestinationRule's credentialName (TLS origination) is judged in the
	// namespaces of the gateways that see the rule.
	egress := `{apiVersion: apps/v1, kind: Deployment, metadata: {name: egress, namespace: mesh-system}, spec: {template: {metadata: {labels: {istio: egressgateway}}, spec: {containers: [{name: mesh-proxy, image: x}]}}}}`
	egressGW := `{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: egress}, spec: {selector: {istio: egressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [api.example.com]}]}}`
	dr := func(ns, cred string) string {
		return `{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: originate, namespace: ` + ns + `}, spec: {host: api.example.com, exportTo: ["."], trafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: MUTUAL, credentialName: ` + cred + `}}]}}}`
	}
	expect(t, "client credential present", run(t, &GatewayCredentials{}, egress, egressGW, secret("client"), dr("mesh-system", "client")))
	expect(t, "client credential missing", run(t, &GatewayCredentials{}, egress, egressGW, secret("other"), dr("mesh-system", "client")),
		"MSH0005 DestinationRule originate.mesh-system spec.trafficPolicy.portLevelSettings[0].tls.credentialName")
	expect(t, "rule not exported to the gateways' namespace", run(t, &GatewayCredentials{}, egress, egressGW, secret("other"), dr("default", "client")))
}

func TestUnsupportedKinds(t *testing.T) {
	expect(t, "supported kinds", run(t, &UnsupportedKinds{}, drReviews, svcReviews,
		`{apiVersion: example.com/v1, kind: Telemetry, metadata: {name: t}}`))
	expect(t, "not read by the mesh", run(t, &UnsupportedKinds{},
		`{apiVersion: networking.istio.io/v1alpha3, kind: EnvoyFilter, metadata: {name: ef}, spec: {configPatches: []}}`,
		`{apiVersion: telemetry.istio.io/v1, kind: Telemetry, metadata: {name: t}, spec: {accessLogging: [{providers: [{name: envoy}]}]}}`,
		`{apiVersion: extensions.istio.io/v1alpha1, kind: WasmPlugin, metadata: {name: w}, spec: {url: oci://x}}`,
		`{apiVersion: networking.istio.io/v1, kind: WorkloadGroup, metadata: {name: g}, spec: {template: {}}}`),
		"MSH0004 EnvoyFilter ef.default spec", "MSH0004 WasmPlugin w.default spec", "MSH0004 WorkloadGroup g.default spec")
}

func tel(name, spec string) string {
	return `{apiVersion: telemetry.istio.io/v1, kind: Telemetry, metadata: {name: ` + name + `}, spec: ` + spec + `}`
}

func TestTelemetries(t *testing.T) {
	expect(t, "one wide, one selecting, providers named", run(t, &Telemetries{}, depReviews,
		tel("wide", `{accessLogging: [{providers: [{name: envoy}]}]}`),
		tel("reviews", `{selector: {matchLabels: {app: reviews}}, tracing: [{providers: [{name: zipkin}], randomSamplingPercentage: 10}]}`)))
	expect(t, "two wide, two selecting the same pods, an entry without provider", run(t, &Telemetries{}, depReviews,
		tel("a", `{accessLogging: [{providers: [{name: envoy}]}]}`),
		tel("b", `{metrics: [{overrides: []}]}`),
		tel("r1", `{selector: {matchLabels: {app: reviews}}, tracing: [{providers: [{name: zipkin}]}]}`),
		tel("r2", `{selector: {matchLabels: {version: v1}}, tracing: [{providers: [{name: zipkin}]}]}`)),
		"IST0160 Telemetry a.default spec.selector", "IST0160 Telemetry b.default spec.selector",
		"IST0157 Telemetry b.default spec.metrics[0].providers",
		"IST0159 Telemetry r1.default spec.selector", "IST0159 Telemetry r2.default spec.selector")
}

func TestApplicationUID(t *testing.T) {
	dep := func(podSC, ctrs string) string {
		return `{apiVersion: apps/v1, kind: Deployment, metadata: {name: app}, spec: {template: {metadata: {labels: {app: x}}, spec: {securityContext: ` + podSC + `, containers: ` + ctrs + `}}}}`
	}
	expect(t, "other users, and the proxy itself", run(t, &ApplicationUID{},
		dep(`{runAsUser: 1000}`, `[{name: app, image: x, securityContext: {runAsUser: 1001}}, {name: istio-proxy, image: p, securityContext: {runAsUser: 1337}}]`)))
	expect(t, "application as 1337", run(t, &ApplicationUID{},
		dep(`{runAsUser: 1337}`, `[{name: app, image: x}, {name: side, image: y, securityContext: {runAsUser: 1337}}]`)),
		"IST0144 Deployment app.default spec.template.spec.securityContext.runAsUser",
		"IST0144 Deployment app.default spec.template.spec.containers[1].securityContext.runAsUser")
}

func TestJWT(t *testing.T) {
	ra := func(name, ns, sel string) string {
		s := ""
		if sel != "" {
			s = `selector: {matchLabels: ` + sel + `}, `
		}
		return `{apiVersion: security.istio.io/v1, kind: RequestAuthentication, metadata: {name: ` + name + `, namespace: ` + ns + `}, spec: {` + s + `jwtRules: [{issuer: https://issuer.example.com}]}}`
	}
	tcpSvc := `{apiVersion: v1, kind: Service, metadata: {name: reviews-db}, spec: {selector: {app: reviews}, ports: [{name: db, port: 5432}]}}`
	expect(t, "HTTP ports only", run(t, &JWT{}, svcReviews, depReviews, ra("jwt", "default", `{app: reviews}`)))
	expect(t, "a TCP port behind the policy", run(t, &JWT{}, svcReviews, tcpSvc, depReviews, ra("jwt", "default", `{app: reviews}`)),
		"IST0119 RequestAuthentication jwt.default spec.selector.matchLabels")

	ingress := `{apiVersion: apps/v1, kind: Deployment, metadata: {name: ingress, namespace: mesh-system}, spec: {template: {metadata: {labels: {istio: ingressgateway}}, spec: {containers: [{name: mesh-proxy, image: x}]}}}}`
	claims := vs("claims", `{hosts: [www.example.com], gateways: [gw], http: [{match: [{headers: {"@request.auth.claims.group": {exact: admin}}}], route: [{destination: {host: reviews}}]}]}`)
	expect(t, "gateway pods validate the token", run(t, &JWT{}, ingress, gwIngress, claims, ra("ingress-jwt", "mesh-system", `{istio: ingressgateway}`)))
	expect(t, "mesh-wide RequestAuthentication", run(t, &JWT{}, ingress, gwIngress, claims, ra("all", "mesh-system", "")))
	expect(t, "no RequestAuthentication for the gateway", run(t, &JWT{}, ingress, gwIngress, claims, ra("jwt", "default", `{app: reviews}`)),
		`IST0149 VirtualService claims.default spec.http[0].match[0].headers["@request.auth.claims.group"]`)
}

func TestWebhooks(t *testing.T) {
	pilotSvc := `{apiVersion: v1, kind: Service, metadata: {name: mesh-pilot, namespace: mesh-system}, spec: {selector: {app: mesh-pilot}, ports: [{name: https-webhook, port: 443}]}}`
	wh := func(kind, name, svc, port string) string {
		return `{apiVersion: admissionregistration.k8s.io/v1, kind: ` + kind + `, metadata: {name: ` + name + `}, webhooks: [{name: sidecar-injector.mesh.io, clientConfig: {service: {namespace: mesh-system, name: ` + svc + `, port: ` + port + `}}}]}`
	}
	expect(t, "calls the pilot Service", run(t, &Webhooks{}, pilotSvc, wh("MutatingWebhookConfiguration", "mesh-sidecar-injector", "mesh-pilot", "443"),
		wh("ValidatingWebhookConfiguration", "other-validator", "gone", "443")))
	expect(t, "missing Service and port", run(t, &Webhooks{}, pilotSvc,
		wh("MutatingWebhookConfiguration", "mesh-sidecar-injector", "mesh-pilot-canary", "443"),
		wh("ValidatingWebhookConfiguration", "istio-validator", "mesh-pilot", "15017")),
		"IST0139 MutatingWebhookConfiguration mesh-sidecar-injector webhooks[0].clientConfig.service.name",
		"IST0139 ValidatingWebhookConfiguration istio-validator webhooks[0].clientConfig.service.port")
}

func TestIngressSubsets(t *testing.T) {
	mesh := vs("reviews", `{hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}, weight: 90}, {destination: {host: reviews, subset: v2}, weight: 10}]}]}`)
	expect(t, "gateway route splits too", run(t, &IngressSubsets{}, gwIngress, mesh,
		vs("edge", `{hosts: [www.example.com], gateways: [gw], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}`)))
	expect(t, "one subset pins the version", run(t, &IngressSubsets{}, gwIngress,
		vs("pin", `{hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}`),
		vs("edge", `{hosts: [www.example.com], gateways: [gw], http: [{route: [{destination: {host: reviews}}]}]}`)))
	expect(t, "bound to both", run(t, &IngressSubsets{}, gwIngress,
		vs("both", `{hosts: [reviews, www.example.com], gateways: [gw, mesh], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}`)))
	expect(t, "gateway route without subset", run(t, &IngressSubsets{}, gwIngress, mesh,
		vs("edge", `{hosts: [www.example.com], gateways: [gw], http: [{route: [{destination: {host: reviews.default.svc.cluster.local}}]}]}`)),
		"IST0140 VirtualService reviews.default spec.http[0].route[0].destination.subset",
		"IST0140 VirtualService reviews.default spec.http[0].route[1].destination.subset")
}
