package analyzers

import (
	"strings"
	"testing"
)

// A three-tier chain: frontend calls api (stated by an AuthorizationPolicy
// on api), api calls db (stated by a VirtualService sourceLabels match).
func chain(apiRetries, dbRetries, appRetries string) []string {
	dep := func(name, sa, ann string) string {
		return `{apiVersion: apps/v1, kind: Deployment, metadata: {name: ` + name + `}, spec: {selector: {matchLabels: {app: ` + name + `}}, template: {metadata: {labels: {app: ` + name + `}, annotations: ` + ann + `}, spec: {serviceAccountName: ` + sa + `, containers: [{name: c, image: x}]}}}}`
	}
	svc := func(name string) string {
		return `{apiVersion: v1, kind: Service, metadata: {name: ` + name + `}, spec: {selector: {app: ` + name + `}, ports: [{name: http, port: 80}]}}`
	}
	return []string{
		dep("frontend", "frontend", `{mesh.io/app-retries: "`+appRetries+`"}`), dep("api", "api", `{}`), dep("db", "db", `{}`),
		svc("frontend"), svc("api"), svc("db"),
		`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: api}, spec: {selector: {matchLabels: {app: api}}, rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/frontend"]}}]}]}}`,
		vs("api", `{hosts: [api], http: [{retries: {attempts: `+apiRetries+`}, route: [{destination: {host: api}}]}]}`),
		vs("db", `{hosts: [db], http: [{match: [{sourceLabels: {app: api}}], retries: {attempts: `+dbRetries+`}, route: [{destination: {host: db}}]}, {route: [{destination: {host: db}}]}]}`),
	}
}

func TestRetryAmplification(t *testing.T) {
	expect(t, "one hop retries", run(t, &RetryAmplification{}, chain("3", "0", "0")...))
	expect(t, "two hops, small product", run(t, &RetryAmplification{}, chain("1", "1", "0")...))
	expect(t, "two hops, 4x4", run(t, &RetryAmplification{}, chain("3", "3", "0")...),
		"MSH0001 VirtualService api.default")
	got := texts(t, &RetryAmplification{}, chain("3", "3", "0")...)
	if len(got) != 1 || !strings.Contains(got[0], "frontend.default -> api.default -> db.default") || !strings.Contains(got[0], "db.default 16 times") {
		t.Errorf("chain or count missing from %q", got)
	}
	expect(t, "app retries and proxy retries on one hop", run(t, &RetryAmplification{}, chain("4", "0", "2")...),
		"MSH0001 VirtualService api.default")
	expect(t, "no call graph", run(t, &RetryAmplification{}, svcReviews, depReviews,
		vs("reviews", `{hosts: [reviews], http: [{retries: {attempts: 9}, route: [{destination: {host: reviews}}]}]}`)))
}

func TestSidecarScope(t *testing.T) {
	var docs []string
	docs = append(docs, `{apiVersion: v1, kind: Namespace, metadata: {name: shop, labels: {mesh-injection: enabled}}}`,
		`{apiVersion: v1, kind: Namespace, metadata: {name: other}}`,
		`{apiVersion: v1, kind: Service, metadata: {name: cart, namespace: shop}, spec: {ports: [{name: http, port: 80}]}}`,
		vs("x", `{hosts: [cart.shop.svc.cluster.local], http: [{route: [{destination: {host: svc0.other.svc.cluster.local}}]}]}`))
	docs[3] = strings.Replace(docs[3], "namespace: default", "namespace: shop", 1)
	for i := 0; i < 12; i++ {
		docs = append(docs, `{apiVersion: v1, kind: Service, metadata: {name: svc`+itoa(i)+`, namespace: other}, spec: {ports: [{name: http, port: 80}]}}`)
	}
	expect(t, "unscoped namespace", run(t, &SidecarScope{}, docs...), "MSH0002 Namespace shop")
	got := texts(t, &SidecarScope{}, docs...)
	if len(got) != 1 || !strings.Contains(got[0], `- "other/svc0.other.svc.cluster.local"`) || !strings.Contains(got[0], `- "./*"`) {
		t.Errorf("suggested Sidecar does not list the routed host: %q", got)
	}
	scoped := append(append([]string{}, docs...), `{apiVersion: networking.istio.io/v1, kind: Sidecar, metadata: {name: default, namespace: shop}, spec: {egress: [{hosts: ["./*"]}]}}`)
	expect(t, "scoped", run(t, &SidecarScope{}, scoped...))
	expect(t, "small mesh", run(t, &SidecarScope{}, docs[:6]...))
}
