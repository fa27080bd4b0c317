package validation

import (
	"strings"
	"testing"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
)

func TestMetaRouteValidation(t *testing.T) {
	good := `apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: calc, namespace: shop}
spec:
  hosts: [calc]
  routes:
  - name: bye
    match: {attributes: {method: {exact: bye}, tenant: {prefix: blue}}}
    route: [{destination: {host: calc, subset: v2, port: {number: 9090}}}]
    timeout: 1.5s
    retries: {attempts: 2, retryOn: "connect-failure, timeout"}
  - route:
    - {destination: {host: calc, subset: v1}, weight: 25}
    - {destination: {host: calc, subset: v2}, weight: 75}
`
	errs, warns := check(t, good)
	if len(errs) > 0 || len(warns) > 0 {
		t.Fatalf("a valid MetaRoute: errors %v, warnings %v", errs, warns)
	}
	d, err := Decode(map[string]any{"apiVersion": "networking.mesh.io/v1alpha1", "kind": "MetaRoute",
		"metadata": map[string]any{"name": "m"}, "spec": map[string]any{"hosts": []any{"calc"}}})
	if err != nil {
		t.Fatal(err)
	}
	if mr, ok := d.Object.(*meshnet.MetaRoute); !ok || mr.Spec.Hosts[0] != "calc" {
		t.Fatalf("Decode gave %#v, want the typed MetaRoute", d.Object)
	}

	bad := `apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: calc}
spec:
  hosts: ["*"]
  routes:
  - name: a
    match: {attributes: {method: {exact: x, prefix: yy}, svc: {regex: "("}}}
    route: [{destination: {host: calc, subset: V_1}, weigth: 3}]
    timeout: soon
    retries: {attempts: -1, retryOn: 5xx}
    mirror: {host: calc-shadow}
  - name: a
    route:
    - {destination: {host: calc}}
    - {destination: {host: calc2}}
`
	errs, warns = check(t, bad)
	for _, want := range []struct{ field, text string }{
		{"spec.hosts[0]", "wildcard"},
		{`spec.routes[0].match.attributes["method"]`, "exactly one"},
		{`spec.routes[0].match.attributes["svc"].regex`, "invalid regular expression"},
		{"spec.routes[0].route[0].weigth", "unknown field"},
		{"spec.routes[0].route[0].destination.subset", "invalid subset name"},
		{"spec.routes[0].timeout", "invalid duration"},
		{"spec.routes[0].retries.attempts", "negative"},
		{"spec.routes[0].retries.retryOn", "unknown retry condition \"5xx\""},
		{"spec.routes[1].name", "used by spec.routes[0]"},
		{"spec.routes[1].route", "no weights"},
	} {
		if !has(errs, want.field, want.text) {
			t.Errorf("no error on %s saying %q; got %v", want.field, want.text, errs)
		}
	}
	if !has(warns, "spec.routes[0].mirror", "not carried out") {
		t.Errorf("mirror not reported as not carried out; warnings %v", warns)
	}
}

// TestMetaRouteExportTo: a MetaRoute's exportTo is checked as a
// VirtualService's: the same values refused with the same messages, each
// naming the entry; ".", "*" and namespace names pass.
func TestMetaRouteExportTo(t *testing.T) {
	docs := map[string]string{
		"VirtualService": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calc, namespace: shop}
spec:
  hosts: [calc]
  exportTo: EXPORT
  tcp: [{route: [{destination: {host: calc}}]}]
`,
		"MetaRoute": `apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: calc, namespace: shop}
spec:
  hosts: [calc]
  exportTo: EXPORT
  routes: [{route: [{destination: {host: calc}}]}]
`,
	}
	for kind, doc := range docs {
		for _, ok := range []string{`["."]`, `["*"]`, `[shop, batch]`, `[".", batch]`} {
			if errs, warns := check(t, strings.Replace(doc, "EXPORT", ok, 1)); len(errs) > 0 || len(warns) > 0 {
				t.Errorf("%s exportTo %s: errors %v, warnings %v; want none", kind, ok, errs, warns)
			}
		}
		for _, c := range []struct{ exportTo, field, text string }{
			{`[Shop]`, "spec.exportTo[0]", `invalid namespace "Shop"`},
			{`[".", "shop/x"]`, "spec.exportTo[1]", `invalid namespace "shop/x"`},
			{`[batch, batch]`, "spec.exportTo[1]", `duplicate entry "batch"`},
			{`["~", shop]`, "spec.exportTo[0]", `cannot be combined`},
		} {
			errs, _ := check(t, strings.Replace(doc, "EXPORT", c.exportTo, 1))
			if !has(errs, c.field, c.text) {
				t.Errorf("%s exportTo %s: no error on %s saying %q; got %v", kind, c.exportTo, c.field, c.text, errs)
			}
		}
		if _, warns := check(t, strings.Replace(doc, "EXPORT", `["*", shop]`, 1)); !has(warns, "spec.exportTo", "every namespace") {
			t.Errorf(`%s exportTo ["*", shop]: no warning on spec.exportTo that "*" covers the rest; got %v`, kind, warns)
		}
	}
}
