package validation

import (
	"strings"
	"testing"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	yaml "sigs.k8s.io/yaml"
)

func check(t *testing.T, doc string) (errs, warns []FieldError) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	errs, warns, err := ValidateMap(normalizeNumbers(obj).(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	return errs, warns
}

func has(errs []FieldError, field, text string) bool {
	for _, e := range errs {
		if e.Field == field && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

func TestValidResourcesPass(t *testing.T) {
	docs := []string{`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,gateway-error"}
    timeout: 10s
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v3}, weight: 20}
`, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}, outlierDetection: {interval: 1m, baseEjectionTime: 15m}}
  subsets: [{name: v1, labels: {version: v1}}]
`, `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["ns1/*.example.com"]
    tls: {mode: SIMPLE, credentialName: cert}
`, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
`, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress: [{hosts: ["./*", "mesh-system/*"]}]
`, `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm}
spec: {address: 198.18.0.5, ports: {http: 8080}, labels: {app: vm}}
`, `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec: {mtls: {mode: STRICT}}
`, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow}
spec:
  selector: {matchLabels: {app: ratings}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/reviews"]}}]
    to: [{operation: {methods: [GET], ports: ["9080"]}}]
    when: [{key: "request.headers[x-user]", values: [a]}]
`, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: trust-domains}
spec:
  rules:
  - from: [{source: {trustDomains: [cluster.local]}}]
  - from: [{source: {notTrustDomains: [example.org]}}]
  - when: [{key: source.serviceAccount, values: [bookinfo/bookinfo-ratings, bookinfo-reviews]}]
`, `
apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  jwtRules: [{issuer: "https://issuer.example", jwksUri: "https://issuer.example/keys"}]
`}
	for _, d := range docs {
		errs, warns := check(t, d)
		if len(errs)+len(warns) > 0 {
			t.Errorf("valid resource reported errors %v warnings %v:\n%s", errs, warns, d)
		}
	}
}

func TestSchemaErrorsNameTheField(t *testing.T) {
	errs, _ := check(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [reviews]
  htp: []
  http:
  - route:
    - destination: {hosst: reviews}
      weight: "heavy"
    timeout: soon
    retries: {attempts: 2.5}
  - match:
    - headers:
        x-user: {exact: a, prefix: b}
        x-team: {exakt: c}
    route:
    - destination: {host: reviews}
`)
	for _, want := range []struct{ field, text string }{
		{`spec.http[1].match[0].headers["x-user"].prefix`, "only one of exact and prefix"},
		{`spec.http[1].match[0].headers["x-team"].exakt`, "unknown field"},
		{"spec.htp", `unknown field "htp"`},
		{"spec.http[0].route[0].destination.hosst", "unknown field"},
		{"spec.http[0].route[0].destination.host", "required field host is missing"},
		{"spec.http[0].route[0].weight", "expected an integer"},
		{"spec.http[0].timeout", "invalid duration"},
		{"spec.http[0].retries.attempts", "expected an integer"},
	} {
		if !has(errs, want.field, want.text) {
			t.Errorf("missing error %s: %s; got %v", want.field, want.text, errs)
		}
	}
}

func TestSemanticErrorsAndWarnings(t *testing.T) {
	cases := []struct {
		doc, field, text string
		warn             bool
	}{
		{`{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: a}, spec: {hosts: ["*"], http: [{route: [{destination: {host: a}}]}]}}`, "spec.hosts[0]", "mesh gateway", false},
		{`{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: a}, spec: {hosts: [a], http: [{match: [{uri: {regex: "a["}}], route: [{destination: {host: a}}]}]}}`, "spec.http[0].match[0].uri.regex", "invalid regular expression", false},
		{`{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: a}, spec: {hosts: [a], http: [{retries: {attempts: 2, retryOn: "5xx,sometimes"}, route: [{destination: {host: a}}]}]}}`, "spec.http[0].retries.retryOn", `"sometimes"`, false},
		{`{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: a}, spec: {hosts: [a], http: [{fault: {abort: {httpStatus: 700}}, route: [{destination: {host: a}}]}]}}`, "spec.http[0].fault.abort.httpStatus", "200-599", false},
		{`{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: a}, spec: {hosts: [a], http: [{}]}}`, "spec.http[0]", "needs one of route", false},
		{`{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: a}, spec: {hosts: [a], http: [{timeout: 1s, retries: {attempts: 1, perTryTimeout: 5s}, route: [{destination: {host: a}}]}]}}`, "spec.http[0].retries.perTryTimeout", "longer than the route timeout", true},
		{`{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: a}, spec: {host: a, subsets: [{name: v1}, {name: v1}]}}`, "spec.subsets[1].name", "defined twice", false},
		{`{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: a}, spec: {host: a, trafficPolicy: {tls: {mode: MUTUAL}}}}`, "spec.trafficPolicy.tls", "MUTUAL mode needs", false},
		{`{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: a}, spec: {servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"]}]}}`, "spec.servers[0].tls", "needs tls", false},
		{`{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: a}, spec: {servers: [{port: {number: 80, name: http, protocol: HTP}, hosts: ["*"]}]}}`, "spec.servers[0].port.protocol", "unknown protocol", false},
		{`{apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: a}, spec: {hosts: [a.example], addresses: [not-ip], ports: [{number: 80, name: http, protocol: HTTP}], resolution: NONE, endpoints: [{address: 198.18.0.1}]}}`, "spec.addresses[0]", "not an IP address", false},
		{`{apiVersion: networking.istio.io/v1, kind: Sidecar, metadata: {name: a}, spec: {egress: [{hosts: ["reviews"]}]}}`, "spec.egress[0].hosts[0]", "NAMESPACE/HOST", false},
		{`{apiVersion: networking.istio.io/v1, kind: Sidecar, metadata: {name: a}, spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: egress.example.com, port: {number: 80}}}}}`, "spec.outboundTrafficPolicy.egressProxy", "only under mode ALLOW_ANY", false},
		{`{apiVersion: networking.istio.io/v1, kind: Sidecar, metadata: {name: a}, spec: {outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress.example.com}}}}`, "spec.outboundTrafficPolicy.egressProxy.port.number", "port is required", false},
		{`{apiVersion: networking.istio.io/v1, kind: WorkloadEntry, metadata: {name: a}, spec: {ports: {http: 70000}}}`, `spec.ports["http"]`, "out of range", false},
		{`{apiVersion: security.istio.io/v1, kind: PeerAuthentication, metadata: {name: a}, spec: {portLevelMtls: {"8080": {mode: DISABLE}}}}`, "spec.portLevelMtls", "needs a selector", false},
		{`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: a}, spec: {action: CUSTOM, rules: [{to: [{operation: {ports: [http]}}]}]}}`, "spec.rules[0].to[0].operation.ports[0]", "not a port number", false},
		{`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: a}, spec: {action: CUSTOM}}`, "spec.provider.name", "CUSTOM needs", false},
		{`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: a}, spec: {rules: [{when: [{key: request.colour, values: [red]}]}]}}`, "spec.rules[0].when[0].key", "unknown condition key", false},
		{`{apiVersion: security.istio.io/v1, kind: RequestAuthentication, metadata: {name: a}, spec: {jwtRules: [{issuer: x, jwksUri: "ftp://x"}]}}`, "spec.jwtRules[0].jwksUri", "not an http(s) URL", false},
		{`{apiVersion: security.istio.io/v1, kind: RequestAuthentication, metadata: {name: a}, spec: {jwtRules: [{issuer: x, jwks: "not json"}]}}`, "spec.jwtRules[0].jwks", "not a JWKS", false},
		{`{apiVersion: security.istio.io/v1, kind: RequestAuthentication, metadata: {name: a}, spec: {jwtRules: [{issuer: x, outputClaimToHeaders: [{header: x-sub}]}]}}`, "spec.jwtRules[0].outputClaimToHeaders[0]", "header and claim are required", false},
		{`{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: Bad_Name}, spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}}`, "metadata.name", "invalid name", false},
	}
	for _, c := range cases {
		errs, warns := check(t, c.doc)
		got := errs
		if c.warn {
			got = warns
		}
		if !has(got, c.field, c.text) {
			t.Errorf("%s: want %s %q (warn=%v); errors %v warnings %v", c.doc, c.field, c.text, c.warn, errs, warns)
		}
	}
}

func TestDeprecatedFieldsAndValues(t *testing.T) {
	var obj map[string]any
	yaml.Unmarshal([]byte(`{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: a}, spec: {host: a, trafficPolicy: {loadBalancer: {simple: LEAST_CONN}, outlierDetection: {consecutiveErrors: 5}}}}`), &obj)
	d, err := Decode(normalizeNumbers(obj).(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	if !has(d.Deprecated, "spec.trafficPolicy.loadBalancer.simple", "LEAST_CONN is deprecated") ||
		!has(d.Deprecated, "spec.trafficPolicy.outlierDetection.consecutiveErrors", "deprecated") {
		t.Errorf("deprecations not reported: %v", d.Deprecated)
	}
}

func TestDecodeFillsTypedObject(t *testing.T) {
	var obj map[string]any
	yaml.Unmarshal([]byte(`{apiVersion: networking.istio.io/v1beta1, kind: VirtualService, metadata: {name: a, namespace: ns, labels: {x: z}}, spec: {hosts: [a], http: [{retries: {attempts: 4}, route: [{destination: {host: a, port: {number: 80}}, weight: 100}]}]}}`), &obj)
	d, err := Decode(normalizeNumbers(obj).(map[string]any))
	if err != nil || len(d.SchemaErrors) > 0 {
		t.Fatal(err, d.SchemaErrors)
	}
	vs := d.Object.(*networking.VirtualService)
	if vs.Namespace != "ns" || vs.Labels["x"] != "z" || vs.Spec.Http[0].Retries.Attempts != 4 || vs.Spec.Http[0].Route[0].Destination.Port.Number != 80 {
		t.Errorf("decoded wrongly: %+v", vs)
	}
	if _, err := Decode(map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "EnvoyFilter"}); err == nil {
		t.Error("unsupported kind accepted")
	}
}

func TestValidateJSON(t *testing.T) {
	errs, _, err := ValidateJSON([]byte(`{"apiVersion":"networking.istio.io/v1","kind":"Gateway","metadata":{"name":"g"},"spec":{"servers":[{"port":{"number":80,"protocol":"HTTP"},"hosts":[]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !has(errs, "spec.servers[0].hosts", "required field hosts is missing") {
		t.Errorf("got %v", errs)
	}
}
