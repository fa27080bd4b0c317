package analyzers

import (
	"sort"
	"strconv"
	"strings"
	"testing"

	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/analyze"
)

func TestSchema(t *testing.T) {
	expect(t, "valid", run(t, &Schema{}, drReviews))
	expect(t, "unknown field and bad value", run(t, &Schema{},
		vs("a", `{hosts: [a], htp: [], http: [{route: [{destination: {host: a}, weight: -1}]}]}`)),
		"IST0106 VirtualService a.default spec.htp")
	expect(t, "semantic error", run(t, &Schema{},
		vs("a", `{hosts: [a], http: [{route: [{destination: {host: a}, weight: -1}]}]}`)),
		"IST0106 VirtualService a.default spec.http[0].route[0].weight")
	expect(t, "warning", run(t, &Schema{},
		vs("a", `{hosts: [a], http: [{timeout: 1s, retries: {attempts: 2, perTryTimeout: 3s}, route: [{destination: {host: a}}]}]}`)),
		"IST0133 VirtualService a.default spec.http[0].retries.perTryTimeout")
	expect(t, "deprecated", run(t, &Schema{},
		`{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: d}, spec: {host: a, trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}}}`),
		"IST0002 DestinationRule d.default spec.trafficPolicy.loadBalancer.simple")
	expect(t, "unknown Istio kind or version", run(t, &Schema{},
		`{apiVersion: networking.istio.io/v1, kind: VirtualServise, metadata: {name: v}}`,
		`{apiVersion: networking.istio.io/v2, kind: Gateway, metadata: {name: g}}`,
		`{apiVersion: networking.istio.io/v1alpha3, kind: EnvoyFilter, metadata: {name: e}}`),
		"IST0106 VirtualServise v.default kind", "IST0106 Gateway g.default kind")
}

func TestReferences(t *testing.T) {
	expect(t, "all resolve", run(t, &References{}, svcReviews, drReviews,
		`{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: gw}, spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}}`,
		vs("reviews", `{hosts: [reviews], gateways: [gw, mesh], http: [{route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}}]}]}`)))
	expect(t, "missing gateway, host, subset, port", run(t, &References{}, svcReviews, drReviews,
		vs("reviews", `{hosts: [reviews], gateways: [other/gw], http: [{route: [{destination: {host: reviews, subset: v3, port: {number: 80}}}, {destination: {host: ratings}, weight: 1}]}]}`)),
		"IST0101 VirtualService reviews.default spec.gateways[0]",
		"IST0101 VirtualService reviews.default spec.http[0].route[0].destination.subset",
		"IST0101 VirtualService reviews.default spec.http[0].route[0].destination.port.number",
		"IST0101 VirtualService reviews.default spec.http[0].route[1].destination.host")
	expect(t, "sidecar egress", run(t, &References{}, svcReviews,
		`{apiVersion: networking.istio.io/v1, kind: Sidecar, metadata: {name: s}, spec: {egress: [{hosts: ["./reviews", "*/anything", "./ratings", "prod/*"]}]}}`),
		"IST0101 Sidecar s.default spec.egress[0].hosts[2]")
	expect(t, "authorization policy namespace", run(t, &References{}, svcReviews,
		`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: ap}, spec: {rules: [{from: [{source: {namespaces: [default, frontend, "team-*"]}}]}]}}`),
		"IST0101 AuthorizationPolicy ap.default spec.rules[0].from[0].source.namespaces[1]")
	expect(t, "service entry host", run(t, &References{},
		`{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: ext}, spec: {hosts: ["*.example.com"], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS, endpoints: [{address: api.example.com}]}}`,
		vs("ext", `{hosts: [api.example.com], tls: [{match: [{sniHosts: [api.example.com]}], route: [{destination: {host: api.example.com}}]}]}`)))
}

func TestMeshGatewayConflicts(t *testing.T) {
	expect(t, "distinct hosts", run(t, &MeshGatewayConflicts{},
		vs("a", `{hosts: [a], http: [{route: [{destination: {host: a}}]}]}`),
		vs("b", `{hosts: [b], http: [{route: [{destination: {host: b}}]}]}`),
		vs("c", `{hosts: [a], gateways: [gw], http: [{route: [{destination: {host: a}}]}]}`)))
	expect(t, "same host, short and long form", run(t, &MeshGatewayConflicts{},
		vs("a", `{hosts: [a], http: [{route: [{destination: {host: a}}]}]}`),
		vs("b", `{hosts: [a.default.svc.cluster.local], gateways: [mesh, gw], http: [{route: [{destination: {host: a}}]}]}`)),
		"IST0109 VirtualService a.default spec.hosts", "IST0109 VirtualService b.default spec.hosts")
}

func TestVirtualServiceRules(t *testing.T) {
	expect(t, "ordered rules", run(t, &VirtualServiceRules{},
		vs("a", `{hosts: [a], http: [{match: [{headers: {end-user: {exact: jason}}}], route: [{destination: {host: a}}]}, {route: [{destination: {host: a}}]}]}`)))
	expect(t, "catch-all first", run(t, &VirtualServiceRules{},
		vs("a", `{hosts: [a], http: [{match: [{uri: {prefix: /}}], route: [{destination: {host: a}}]}, {match: [{uri: {exact: /x}}], route: [{destination: {host: a}}]}]}`)),
		"IST0130 VirtualService a.default spec.http[1]")
	expect(t, "repeated match", run(t, &VirtualServiceRules{},
		vs("a", `{hosts: [a], http: [{match: [{uri: {exact: /x}}], route: [{destination: {host: a}}]}, {match: [{name: again, uri: {exact: /x}}, {uri: {exact: /y}}], route: [{destination: {host: a}}]}, {match: [{uri: {exact: /y}}], route: [{destination: {host: a}}]}]}`)),
		"IST0131 VirtualService a.default spec.http[1].match[0]",
		"IST0130 VirtualService a.default spec.http[2]")
	expect(t, "tcp catch-all", run(t, &VirtualServiceRules{},
		vs("a", `{hosts: [a], tcp: [{route: [{destination: {host: a}}]}, {match: [{port: 5}], route: [{destination: {host: a}}]}]}`)),
		"IST0130 VirtualService a.default spec.tcp[1]")
}

const gwIngress = `{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: gw}, spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*.example.com", "prod/shop.test"]}]}}`

func TestGatewayHosts(t *testing.T) {
	expect(t, "served", run(t, &GatewayHosts{}, gwIngress,
		vs("a", `{hosts: [www.example.com], gateways: [gw], http: [{route: [{destination: {host: a}}]}]}`)))
	expect(t, "not served", run(t, &GatewayHosts{}, gwIngress,
		vs("a", `{hosts: [www.example.org, shop.test], gateways: [gw], http: [{route: [{destination: {host: a}}]}]}`)),
		"IST0132 VirtualService a.default spec.hosts[0]", "IST0132 VirtualService a.default spec.hosts[1]")
}

const svcMultiPort = `{apiVersion: v1, kind: Service, metadata: {name: web}, spec: {selector: {app: web}, ports: [{name: http, port: 80}, {name: http-admin, port: 8080}]}}`

func TestPortSelector(t *testing.T) {
	expect(t, "port given", run(t, &PortSelector{}, svcMultiPort, gwIngress,
		vs("a", `{hosts: [www.example.com], gateways: [gw], http: [{route: [{destination: {host: web, port: {number: 80}}}]}]}`)))
	// Sidecar routes too, as Istio reports them.
	expect(t, "mesh only", run(t, &PortSelector{}, svcMultiPort,
		vs("a", `{hosts: [web], http: [{route: [{destination: {host: web}}]}]}`)),
		"IST0112 VirtualService a.default spec.http[0].route[0].destination.port")
	expect(t, "missing", run(t, &PortSelector{}, svcMultiPort, gwIngress,
		vs("a", `{hosts: [www.example.com], gateways: [gw], http: [{route: [{destination: {host: web}}]}]}`)),
		"IST0112 VirtualService a.default spec.http[0].route[0].destination.port")
}

func TestSubsetPods(t *testing.T) {
	route := vs("reviews", `{hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}, weight: 50}, {destination: {host: reviews, subset: v2}, weight: 50}]}]}`)
	expect(t, "v2 routed, no pods", run(t, &SubsetPods{}, svcReviews, depReviews, drReviews, route),
		"IST0173 DestinationRule reviews.default spec.subsets[1]")
	expect(t, "v2 not routed", run(t, &SubsetPods{}, svcReviews, depReviews, drReviews,
		vs("reviews", `{hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}`)))
	pod := `{apiVersion: v1, kind: Pod, metadata: {name: reviews-v2-abc, labels: {app: reviews, version: v2}}, spec: {containers: [{name: r, image: x}]}}`
	expect(t, "live pod", run(t, &SubsetPods{}, svcReviews, depReviews, drReviews, route, pod))
}

func TestDestinationRuleHosts(t *testing.T) {
	expect(t, "known", run(t, &DestinationRuleHosts{}, svcReviews, drReviews,
		`{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: all}, spec: {host: "*.default.svc.cluster.local"}}`))
	expect(t, "unknown", run(t, &DestinationRuleHosts{}, drReviews), "IST0174 DestinationRule reviews.default spec.host")
}

func TestInjection(t *testing.T) {
	ns := func(name, labels string) string {
		return `{apiVersion: v1, kind: Namespace, metadata: {name: ` + name + `, labels: ` + labels + `}}`
	}
	pod := func(name, ns, containers, labels string) string {
		return `{apiVersion: v1, kind: Pod, metadata: {name: ` + name + `, namespace: ` + ns + `, labels: ` + labels + `}, spec: {containers: ` + containers + `}}`
	}
	expect(t, "labelled and injected", run(t, &Injection{},
		ns("a", `{mesh-injection: enabled}`), ns("b", `{istio-injection: enabled}`), ns("c", `{mesh.io/rev: canary}`),
		ns("d", `{mesh-injection: disabled}`), ns("e", `{istio-injection: "false"}`), ns("kube-system", `{}`),
		pod("p", "a", `[{name: app}, {name: mesh-proxy}]`, `{}`),
		pod("q", "b", `[{name: app}, {name: istio-proxy}]`, `{}`),
		pod("r", "a", `[{name: app}]`, `{sidecar.mesh.io/inject: "false"}`),
		pod("s", "d", `[{name: app}]`, `{}`)))
	expect(t, "not labelled, missing proxy", run(t, &Injection{},
		ns("a", `{mesh-injection: enabled}`), ns("plain", `{team: x}`),
		pod("p", "a", `[{name: app}]`, `{}`),
		pod("q", "plain", `[{name: app}]`, `{sidecar.mesh.io/inject: "true"}`)),
		"IST0102 Namespace plain metadata.labels",
		"IST0103 Pod p.a spec.containers", "IST0103 Pod q.plain spec.containers")
}

func TestPortNames(t *testing.T) {
	// As Istio reads a port: UDP is UDP; appProtocol, when set, is read
	// as the name would be; a well-known port (SMTP, DNS, MySQL, MongoDB)
	// named for nothing is TCP.
	expect(t, "conventional", run(t, &PortNames{},
		`{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{name: http, port: 80}, {name: grpc-web-x, port: 81}, {name: db, port: 5432, appProtocol: tcp},
		  {name: dns, port: 5353, protocol: UDP}, {name: db, port: 3306}, {name: api, port: 8080, appProtocol: kubernetes.io/h2c}, {name: proxy, port: 3128, appProtocol: http_proxy}]}}`))
	expect(t, "unconventional", run(t, &PortNames{},
		`{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{name: web, port: 80}, {port: 81}, {name: httpx, port: 82}, {name: db, port: 5432, appProtocol: postgresql}]}}`),
		"IST0118 Service s.default spec.ports[0].name", "IST0118 Service s.default spec.ports[1].name", "IST0118 Service s.default spec.ports[2].name",
		"IST0118 Service s.default spec.ports[3].name")
	// An ExternalName Service's ports are IST0150's.
	expect(t, "ExternalName", run(t, &PortNames{},
		`{apiVersion: v1, kind: Service, metadata: {name: ext}, spec: {type: ExternalName, externalName: api.example.com, ports: [{name: web, port: 80}]}}`))
}

func TestServicePorts(t *testing.T) {
	dep := `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web}, spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: w, image: x}]}}}}`
	svc := func(name, ports string) string {
		return `{apiVersion: v1, kind: Service, metadata: {name: ` + name + `}, spec: {selector: {app: web}, ports: ` + ports + `}}`
	}
	expect(t, "agree", run(t, &ServicePorts{}, dep, svc("a", `[{name: http, port: 80, targetPort: 8080}]`), svc("b", `[{name: http-x, port: 80, targetPort: 8080}]`)))
	expect(t, "protocols differ", run(t, &ServicePorts{}, dep, svc("a", `[{name: http, port: 80}]`), svc("b", `[{name: tcp, port: 80}]`)),
		"IST0116 Deployment web.default")
	expect(t, "target port behind two ports", run(t, &ServicePorts{}, dep, svc("a", `[{name: http, port: 80, targetPort: 8080}]`), svc("b", `[{name: http, port: 8000, targetPort: 8080}]`)),
		"IST0137 Deployment web.default")
}

func TestSidecars(t *testing.T) {
	sc := func(name, spec string) string {
		return `{apiVersion: networking.istio.io/v1, kind: Sidecar, metadata: {name: ` + name + `}, spec: ` + spec + `}`
	}
	expect(t, "one each", run(t, &Sidecars{}, depReviews, sc("default", `{egress: [{hosts: ["./*"]}]}`),
		sc("r", `{workloadSelector: {labels: {version: v1}}, egress: [{hosts: ["./*"]}]}`)))
	expect(t, "two wide", run(t, &Sidecars{}, sc("a", `{egress: [{hosts: ["./*"]}]}`), sc("b", `{egress: [{hosts: ["*/*"]}]}`)),
		"IST0111 Sidecar a.default spec.workloadSelector", "IST0111 Sidecar b.default spec.workloadSelector")
	expect(t, "overlapping selectors", run(t, &Sidecars{}, depReviews,
		sc("a", `{workloadSelector: {labels: {app: reviews}}, egress: [{hosts: ["./*"]}]}`),
		sc("b", `{workloadSelector: {labels: {version: v1}}, egress: [{hosts: ["./*"]}]}`)),
		"IST0110 Sidecar a.default spec.workloadSelector", "IST0110 Sidecar b.default spec.workloadSelector")
}

func TestGateways(t *testing.T) {
	ingress := `{apiVersion: apps/v1, kind: Deployment, metadata: {name: ingress, namespace: mesh-system}, spec: {selector: {matchLabels: {istio: ingressgateway}}, template: {metadata: {labels: {istio: ingressgateway}}, spec: {containers: [{name: mesh-proxy, image: x}]}}}}`
	ingressSvc := `{apiVersion: v1, kind: Service, metadata: {name: ingress, namespace: mesh-system}, spec: {selector: {istio: ingressgateway}, ports: [{name: http, port: 80, targetPort: 8080}]}}`
	gw := func(name string, port int, host string) string {
		return `{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: ` + name + `}, spec: {selector: {istio: ingressgateway}, servers: [{port: {number: ` + itoa(port) + `, name: http, protocol: HTTP}, hosts: ["` + host + `"]}]}}`
	}
	expect(t, "port on service, no overlap", run(t, &Gateways{}, ingress, ingressSvc, gw("a", 80, "a.example.com"), gw("b", 8080, "b.example.com")))
	expect(t, "no gateway service known", run(t, &Gateways{}, gw("a", 9999, "a.example.com")))
	expect(t, "port missing", run(t, &Gateways{}, ingress, ingressSvc, gw("a", 443, "a.example.com")),
		"IST0162 Gateway a.default spec.servers[0].port.number")
	expect(t, "conflict", run(t, &Gateways{}, ingress, ingressSvc, gw("a", 80, "*.example.com"), gw("b", 80, "shop.example.com")),
		"IST0145 Gateway a.default spec.servers[0]", "IST0145 Gateway b.default spec.servers[0]")
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestServiceEntryAddresses(t *testing.T) {
	se := func(spec string) string {
		return `{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: db}, spec: ` + spec + `}`
	}
	expect(t, "http or addressed", run(t, &ServiceEntryAddresses{},
		se(`{hosts: [api.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}`)))
	expect(t, "addressed tcp", run(t, &ServiceEntryAddresses{},
		se(`{hosts: [db.example.com], addresses: [198.18.5.0/24], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: DNS}`)))
	expect(t, "tcp without addresses", run(t, &ServiceEntryAddresses{},
		se(`{hosts: [db.example.com], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: DNS}`)),
		"IST0134 ServiceEntry db.default spec.addresses")
}

func TestWorkloadSelectors(t *testing.T) {
	ap := func(sel string) string {
		return `{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: ap}, spec: {selector: {matchLabels: ` + sel + `}}}`
	}
	expect(t, "matches", run(t, &WorkloadSelectors{}, depReviews, ap(`{app: reviews}`)))
	expect(t, "matches nothing", run(t, &WorkloadSelectors{}, depReviews, ap(`{app: ratings}`)),
		"IST0127 AuthorizationPolicy ap.default spec.selector.matchLabels")
	expect(t, "sidecar", run(t, &WorkloadSelectors{}, depReviews,
		`{apiVersion: networking.istio.io/v1, kind: Sidecar, metadata: {name: s}, spec: {workloadSelector: {labels: {app: nope}}, egress: [{hosts: ["./*"]}]}}`),
		"IST0127 Sidecar s.default spec.workloadSelector.labels")
}

func TestAnnotations(t *testing.T) {
	dep := func(meta, tmpl string) string {
		return `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, annotations: ` + meta + `}, spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}, annotations: ` + tmpl + `}, spec: {containers: [{name: w, image: x}]}}}}`
	}
	expect(t, "fine", run(t, &Annotations{}, dep(`{example.com/x: y, mesh.io/analyze-suppress: "IST0118"}`,
		`{sidecar.istio.io/rewriteAppHTTPProbers: "true", traffic.sidecar.istio.io/excludeOutboundIPRanges: "198.18.0.0/15", mesh.io/app-retries: "2"}`)))
	expect(t, "unknown, misplaced, invalid", run(t, &Annotations{}, dep(`{sidecar.istio.io/inject: "true"}`,
		`{sidecar.istio.io/injekt: "true", traffic.sidecar.istio.io/includeInboundPorts: "80,http", mesh.io/app-retries: "many"}`)),
		`IST0107 Deployment web.default metadata.annotations["sidecar.istio.io/inject"]`,
		`IST0108 Deployment web.default spec.template.metadata.annotations["sidecar.istio.io/injekt"]`,
		`IST0125 Deployment web.default spec.template.metadata.annotations["traffic.sidecar.istio.io/includeInboundPorts"]`,
		`IST0125 Deployment web.default spec.template.metadata.annotations["mesh.io/app-retries"]`)
	expect(t, "deprecated", run(t, &Annotations{}, dep(`{}`, `{sidecar.istio.io/inject: "false"}`)),
		`IST0135 Deployment web.default spec.template.metadata.annotations["sidecar.istio.io/inject"]`)

	// The staged-rollout contract (docs/rollout.md): known on the config
	// kinds pilot stages, each value checked as pilot reads it.
	vs := func(ann string) string {
		return `{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: r, namespace: default, annotations: ` + ann + `}, spec: {hosts: [a.example.com], http: [{route: [{destination: {host: a.example.com}}]}]}}`
	}
	expect(t, "rollout contract", run(t, &Annotations{}, vs(`{rollout.mesh.io/stages: "10,50,100", rollout.mesh.io/interval: 60s, rollout.mesh.io/max-5xx-ratio: "0.02", rollout.mesh.io/max-latency-increase: "1.5", rollout.mesh.io/promote: "3/all"}`)))
	expect(t, "rollout contract broken", run(t, &Annotations{}, vs(`{rollout.mesh.io/stages: "10,50", rollout.mesh.io/interval: soon, rollout.mesh.io/abort: "x", rollout.mesh.io/stage: "1"}`),
		`{apiVersion: v1, kind: Service, metadata: {name: web, namespace: default, annotations: {rollout.mesh.io/stages: "100"}}, spec: {ports: [{port: 80}]}}`),
		`IST0107 Service web.default metadata.annotations["rollout.mesh.io/stages"]`,
		`IST0108 VirtualService r.default metadata.annotations["rollout.mesh.io/stage"]`,
		`IST0125 VirtualService r.default metadata.annotations["rollout.mesh.io/abort"]`,
		`IST0125 VirtualService r.default metadata.annotations["rollout.mesh.io/interval"]`,
		`IST0125 VirtualService r.default metadata.annotations["rollout.mesh.io/stages"]`)
}

func TestServiceEntryAddressesUnderAutoAllocation(t *testing.T) {
	se := func(name, spec string) string {
		return `{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: ` + name + `}, spec: ` + spec + `}`
	}
	docs := []string{
		se("db", `{hosts: [db.example.com], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: DNS}`),
		se("wild", `{hosts: ["*.example.org"], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: DNS}`),
		se("none", `{hosts: [raw.example.net], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: NONE}`),
	}
	for _, c := range []struct {
		name string
		md   map[string]string
		want []string
	}{
		{"capture and allocation on", map[string]string{"ISTIO_META_DNS_CAPTURE": "true", "ISTIO_META_DNS_AUTO_ALLOCATE": "true"},
			[]string{"IST0134 ServiceEntry none.default spec.addresses", "IST0134 ServiceEntry wild.default spec.addresses"}},
		// The allocated address reaches an app only through the DNS proxy.
		{"allocation without capture", map[string]string{"ISTIO_META_DNS_AUTO_ALLOCATE": "true"},
			[]string{"IST0134 ServiceEntry db.default spec.addresses", "IST0134 ServiceEntry none.default spec.addresses", "IST0134 ServiceEntry wild.default spec.addresses"}},
		{"off", map[string]string{"ISTIO_META_DNS_CAPTURE": "true", "ISTIO_META_DNS_AUTO_ALLOCATE": "false"},
			[]string{"IST0134 ServiceEntry db.default spec.addresses", "IST0134 ServiceEntry none.default spec.addresses", "IST0134 ServiceEntry wild.default spec.addresses"}},
	} {
		mesh := &analyze.Mesh{Config: &meshapi.MeshConfig{DefaultConfig: &meshapi.ProxyConfig{ProxyMetadata: c.md}}}
		msgs := runUnder(t, mesh, &ServiceEntryAddresses{}, docs...)
		var got []string
		for _, m := range msgs {
			got = append(got, m.Type.Code+" "+m.Resource.Ref()+" "+m.Field)
			if c.name == "capture and allocation on" && !strings.Contains(m.Text, "auto-allocation, on in the mesh config, skips") {
				t.Errorf("%s: %s does not say why allocation does not cover it: %s", c.name, m.Resource.Ref(), m.Text)
			}
		}
		sort.Strings(got)
		expect(t, c.name, got, c.want...)
	}
}
