package enforced

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshapi "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
)

// TestEveryFieldClassified walks the descriptors of every accepted kind in
// istio.io/api, and the Go types of mesh's own kinds (MetaRoute): a field
// no entry classifies fails here, so a field a new API version adds cannot
// be accepted silently.
func TestEveryFieldClassified(t *testing.T) {
	for kind, spec := range Specs {
		var paths []string
		protoLeaves(spec.ProtoReflect().Descriptor(), "spec", map[protoreflect.FullName]bool{}, &paths)
		checkPaths(t, kind, paths)
	}
	// The mesh config, from meshConfig.
	var paths []string
	protoLeaves((&meshapi.MeshConfig{}).ProtoReflect().Descriptor(), "meshConfig", map[protoreflect.FullName]bool{}, &paths)
	checkPaths(t, MeshConfigKind, paths)
	// mesh's own kinds are Go types: their fields are walked by JSON name.
	for kind, typ := range Types {
		var paths []string
		structLeaves(typ, "spec", map[reflect.Type]bool{}, &paths)
		if len(paths) == 0 {
			t.Fatalf("%s: no fields found in %v", kind, typ)
		}
		checkPaths(t, kind, paths)
	}
	for kind := range table {
		if Specs[kind] == nil && Types[kind] == nil && kind != MeshConfigKind {
			t.Errorf("table kind %s is in neither Specs nor Types", kind)
		}
	}
}

// checkPaths fails on a field path no entry classifies and on an entry
// naming no field.
func checkPaths(t *testing.T, kind string, paths []string) {
	t.Helper()
	for _, p := range paths {
		if _, ok := Lookup(kind, p); !ok {
			t.Errorf("%s %s: not classified; add it to the table (enforced, or not with a note saying what happens instead)", kind, p)
		}
	}
	valid := map[string]bool{}
	for _, p := range paths {
		for q := p; q != ""; {
			valid[q] = true
			i := strings.LastIndexByte(q, '.')
			if i < 0 {
				break
			}
			q = q[:i]
		}
	}
	for p := range table[kind] {
		if !valid[p] {
			t.Errorf("%s %s: the table names a field the API does not have", kind, p)
		}
	}
}

func spec(t *testing.T, kind, y string) proto.Message {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	m := Specs[kind].ProtoReflect().New().Interface()
	if err := protojson.Unmarshal(j, m); err != nil {
		t.Fatalf("%s %s: %v", kind, y, err)
	}
	return m
}

func paths(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Path)
	}
	sort.Strings(out)
	return out
}

func TestUnenforcedNamesSetFields(t *testing.T) {
	cases := []struct {
		kind, spec string
		want       []string
	}{
		{"VirtualService", `{hosts: [r], http: [{route: [{destination: {host: r}}]}, {corsPolicy: {allowOrigins: [{exact: "https://a"}]}, route: [{destination: {host: r}}]}]}`,
			[]string{"spec.http[1].corsPolicy"}},
		{"VirtualService", `{hosts: [r], http: [{match: [{uri: {prefix: /}, headers: {x-a: {exact: b}}}], route: [{destination: {host: r}, weight: 100}]}]}`, nil},
		{"DestinationRule", `{host: r, subsets: [{name: v1, labels: {v: "1"}, trafficPolicy: {loadBalancer: {localityLbSetting: {enabled: true}}}}]}`,
			[]string{"spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting"}},
		{"AuthorizationPolicy", `{action: ALLOW, rules: [{from: [{source: {requestPrincipals: ["*"], serviceAccounts: [a]}}], when: [{key: "experimental.envoy.filters.x[y]", values: [x]}, {key: "request.auth.claims[g]", values: [x]}, {key: source.ip, values: [198.18.0.1]}]}]}`,
			[]string{"spec.rules[0].when[0].key"}},
		{"AuthorizationPolicy", `{action: CUSTOM, provider: {name: opa}, rules: [{}]}`, nil}, // the provider is checked against the mesh config (authz.ProviderFinding)
		{"RequestAuthentication", `{jwtRules: [{issuer: x, fromHeaders: [{name: x-jwt}]}]}`, nil},
		{"RequestAuthentication", `{jwtRules: [{issuer: x, spaceDelimitedClaims: [roles]}]}`, []string{"spec.jwtRules[0].spaceDelimitedClaims"}},
		{"PeerAuthentication", `{mtls: {mode: STRICT}, portLevelMtls: {"8080": {mode: PERMISSIVE}}}`, nil},
		{"Sidecar", `{workloadSelector: {labels: {app: r}}, egress: [{hosts: ["./*"], port: {number: 9080}}]}`, nil},
		{"Sidecar", `{egress: [{hosts: ["./*"], captureMode: NONE}], outboundTrafficPolicy: {mode: REGISTRY_ONLY}}`,
			[]string{"spec.egress[0].captureMode"}},
		{"Gateway", `{servers: [{port: {number: 443, name: p, protocol: TLS}, hosts: ["*"], tls: {mode: PASSTHROUGH}}, {port: {number: 31400, name: t, protocol: TCP}, hosts: ["*"]}]}`, nil},
		{"Gateway", `{servers: [{port: {number: 443, name: s, protocol: HTTPS}, hosts: ["*"]}, {port: {number: 53, name: d, protocol: UDP}, hosts: ["*"]}]}`,
			[]string{"spec.servers[0].tls", "spec.servers[1].port.protocol"}},
		{"VirtualService", `{hosts: [a], tls: [{match: [{sniHosts: [a], port: 443, gateways: [g]}], route: [{destination: {host: a}}]}], tcp: [{match: [{port: 31400, gateways: [g], sourceLabels: {app: x}}], route: [{destination: {host: b}}]}]}`,
			[]string{"spec.tcp[0].match[0].sourceLabels"}},
		// Source matches hold on sidecars; bound to gateways only, they are reported.
		{"VirtualService", `{hosts: [a], tls: [{match: [{sniHosts: [a], sourceNamespace: x, sourceLabels: {app: x}}], route: [{destination: {host: a}}]}], tcp: [{match: [{gateways: [mesh, g], sourceLabels: {app: x}}], route: [{destination: {host: b}}]}]}`, nil},
		{"VirtualService", `{hosts: [a], gateways: [g], tls: [{match: [{sniHosts: [a], sourceNamespace: x}], route: [{destination: {host: a}}]}, {match: [{sniHosts: [a], gateways: [mesh], sourceNamespace: x}], route: [{destination: {host: a}}]}]}`,
			[]string{"spec.tls[0].match[0].sourceNamespace"}},
	}
	for _, c := range cases {
		got := paths(Unenforced(c.kind, spec(t, c.kind, c.spec)))
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s %s: unenforced %v, want %v", c.kind, c.spec, got, c.want)
		}
	}
	// For AuthorizationPolicy the note says what becomes of the rule.
	fs := Unenforced("AuthorizationPolicy", spec(t, "AuthorizationPolicy", `{rules: [{to: [{operation: {paths: [/a]}}], when: [{key: "destination.name", values: [x]}]}]}`))
	if len(fs) != 1 || !strings.Contains(fs[0].Note, "allows nobody") {
		t.Errorf("findings %v; want the note to say the ALLOW rule allows nobody", fs)
	}
}

// A set field no entry covers (what a newer API adds) is reported, not
// skipped: here one entry is taken out of the table for the test.
func TestUnclassifiedSetFieldIsReported(t *testing.T) {
	const p = "spec.rules.from.source.serviceAccounts"
	saved := table["AuthorizationPolicy"][p]
	delete(table["AuthorizationPolicy"], p)
	roots.Clear() // the walk's per-path memo was taken from the full table
	defer func() { table["AuthorizationPolicy"][p] = saved; roots.Clear() }()
	fs := Unenforced("AuthorizationPolicy", spec(t, "AuthorizationPolicy", `{rules: [{from: [{source: {serviceAccounts: [a]}}]}]}`))
	if len(fs) != 1 || fs[0].Path != "spec.rules[0].from[0].source.serviceAccounts" || !strings.Contains(fs[0].Note, "not known") {
		t.Errorf("findings %v; want the unclassified field reported as not known", fs)
	}
}

// MetaRoute's fields are walked by their JSON names: mirror is reported
// where it is set, the routes the mesh carries out are not, and a field
// the table does not know (taken out here) is reported as not known.
func TestStructNamesSetFields(t *testing.T) {
	mr := func(y string) *meshnet.MetaRouteSpec {
		t.Helper()
		var s meshnet.MetaRouteSpec
		if err := yaml.UnmarshalStrict([]byte(y), &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	cases := []struct {
		spec string
		want []string
	}{
		{`{hosts: [a], routes: [{name: r, match: {attributes: {method: {exact: Get}, x-tenant: {prefix: t}}}, route: [{destination: {host: a, subset: v1, port: {number: 9090}}, weight: 100}], timeout: 1s, retries: {attempts: 2, retryOn: reset}}]}`, nil},
		{`{hosts: [a], routes: [{route: [{destination: {host: a}}]}, {route: [{destination: {host: a}}], mirror: {host: b}, mirrorPercentage: {value: 10}}]}`,
			[]string{"spec.routes[1].mirror", "spec.routes[1].mirrorPercentage"}},
	}
	for _, c := range cases {
		got := paths(Struct(meshnet.Kind, mr(c.spec)))
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: unenforced %v, want %v", c.spec, got, c.want)
		}
	}
	const p = "spec.routes.match.attributes.regex"
	saved := table[meshnet.Kind][p]
	delete(table[meshnet.Kind], p)
	defer func() { table[meshnet.Kind][p] = saved }()
	fs := Struct(meshnet.Kind, mr(`{hosts: [a], routes: [{match: {attributes: {method: {regex: "G.*"}}}, route: [{destination: {host: a}}]}]}`))
	if len(fs) != 1 || fs[0].Path != "spec.routes[0].match.attributes[method].regex" || !strings.Contains(fs[0].Note, "not known") {
		t.Errorf("findings %v; want the unclassified field reported as not known", fs)
	}
}
