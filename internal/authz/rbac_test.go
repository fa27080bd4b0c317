package authz

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	rbaccfg "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	securityapi "istio.io/api/security/v1beta1"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/enforced"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/rbac"
)

// caller is one request as mesh-proxy's RBAC filter sees it.
type caller struct {
	ns, sa  string // "" ns: plaintext, no peer identity
	td      string // trust domain, cluster.local when empty
	ip      string
	port    uint16
	method  string
	path    string
	host    string
	headers map[string]string
	jwt     map[string]any // istio_authn attributes the JWT filter left; nil: no verified token
}

func (c caller) request() *rbac.Request {
	r, _ := http.NewRequest(orDefault(c.method, "GET"), "http://x"+orDefault(c.path, "/"), nil)
	r.Host = orDefault(c.host, "reviews:9080")
	for k, v := range c.headers {
		r.Header.Set(k, v)
	}
	q := &rbac.Request{HTTP: r,
		Remote: netip.AddrPortFrom(netip.MustParseAddr(orDefault(c.ip, "198.18.0.7")), 40000),
		Local:  netip.AddrPortFrom(netip.MustParseAddr("198.18.0.9"), c.port|map[bool]uint16{true: 9080}[c.port == 0])}
	if c.ns != "" {
		q.Principal = "spiffe://" + orDefault(c.td, "cluster.local") + "/ns/" + c.ns + "/sa/" + c.sa
	}
	q.Meta = &httpfilter.Metadata{}
	if c.jwt != nil {
		q.Meta.Set(AuthnFilter, c.jwt)
	}
	return q
}

func joined(fs []enforced.Finding) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, f.String())
	}
	return strings.Join(parts, "; ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func parseRule(t *testing.T, y string) *securityapi.Rule {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	r := &securityapi.Rule{}
	if err := protojson.Unmarshal(j, r); err != nil {
		t.Fatalf("rule %s: %v", y, err)
	}
	return r
}

// engine compiles the rule as pilot sends it into mesh-proxy's RBAC filter.
func engine(t *testing.T, rule *securityapi.Rule, deny, http bool) *rbac.Engine {
	t.Helper()
	action := rbaccfg.RBAC_ALLOW
	if deny {
		action = rbaccfg.RBAC_DENY
	}
	rules := &rbaccfg.RBAC{Action: action, Policies: map[string]*rbaccfg.Policy{}}
	if res := TranslateRule(rule, "bookinfo", http, deny); res.Permission != nil {
		rules.Policies["p"] = &rbaccfg.Policy{Permissions: []*rbaccfg.Permission{res.Permission}, Principals: []*rbaccfg.Principal{res.Principal}}
	}
	e, err := rbac.Compile(&rbachttp.RBAC{Rules: rules}, "rbac")
	if err != nil {
		t.Fatalf("mesh-proxy refuses the translation: %v", err)
	}
	return e
}

var (
	productpage = caller{ns: "bookinfo", sa: "bookinfo-productpage"}
	ratings     = caller{ns: "bookinfo", sa: "bookinfo-ratings"}
	otherNS     = caller{ns: "shop", sa: "bookinfo-productpage"}
	plaintext   = caller{}
	alice       = caller{jwt: map[string]any{"request.auth.principal": "https://issuer.example/alice", "request.auth.audiences": []any{"reviews"},
		"request.auth.presenter": "web", "request.auth.claims": map[string]any{"groups": []any{"admin", "dev"}, "org": map[string]any{"team": "core"}}}}
	bob = caller{jwt: map[string]any{"request.auth.principal": "https://issuer.example/bob", "request.auth.audiences": "ratings",
		"request.auth.claims": map[string]any{"groups": "dev", "org": map[string]any{"team": "web"}}}}
)

// Every Source field and every `when` key of the current API, in ALLOW
// rules: the callers it names get in, the others do not.
func TestAllowRulesAdmitOnlyWhomTheyName(t *testing.T) {
	cases := []struct {
		name    string
		rule    string
		in, out []caller
	}{
		{"serviceAccounts ns/sa", `{from: [{source: {serviceAccounts: [bookinfo/bookinfo-productpage]}}]}`,
			[]caller{productpage}, []caller{ratings, otherNS, plaintext}},
		{"serviceAccounts bare sa is the policy's namespace", `{from: [{source: {serviceAccounts: [bookinfo-productpage]}}]}`,
			[]caller{productpage}, []caller{ratings, otherNS, plaintext}},
		{"notServiceAccounts", `{from: [{source: {notServiceAccounts: [bookinfo/bookinfo-ratings]}}]}`,
			[]caller{productpage, otherNS}, []caller{ratings}},
		{"when source.serviceAccount", `{when: [{key: source.serviceAccount, values: [bookinfo-productpage]}]}`,
			[]caller{productpage}, []caller{ratings, otherNS, plaintext}},
		{"when source.serviceAccount notValues", `{when: [{key: source.serviceAccount, notValues: [bookinfo/bookinfo-ratings]}]}`,
			[]caller{productpage, otherNS}, []caller{ratings}},
		{"principals exact", `{from: [{source: {principals: [cluster.local/ns/bookinfo/sa/bookinfo-productpage]}}]}`,
			[]caller{productpage}, []caller{ratings, plaintext}},
		{"principals suffix", `{from: [{source: {principals: ["*/sa/bookinfo-productpage"]}}]}`,
			[]caller{productpage, otherNS}, []caller{ratings, plaintext}},
		{"principals presence", `{from: [{source: {principals: ["*"]}}]}`,
			[]caller{productpage, ratings}, []caller{plaintext}},
		{"namespaces prefix", `{from: [{source: {namespaces: ["book*"]}}]}`,
			[]caller{productpage, ratings}, []caller{otherNS, plaintext}},
		{"notNamespaces", `{from: [{source: {notNamespaces: [shop]}}]}`,
			[]caller{productpage, plaintext}, []caller{otherNS}},
		{"trustDomains", `{from: [{source: {trustDomains: [cluster.local]}}]}`,
			[]caller{productpage}, []caller{{ns: "bookinfo", sa: "bookinfo-productpage", td: "evil.example"}, plaintext}},
		{"notTrustDomains suffix", `{from: [{source: {notTrustDomains: ["*.example"]}}]}`,
			[]caller{productpage}, []caller{{ns: "bookinfo", sa: "x", td: "evil.example"}}},
		{"ipBlocks", `{from: [{source: {ipBlocks: [198.18.0.0/24]}}]}`,
			[]caller{productpage}, []caller{{ip: "198.18.1.1"}}},
		{"remoteIpBlocks", `{from: [{source: {notRemoteIpBlocks: [198.18.1.1]}}]}`,
			[]caller{productpage}, []caller{{ip: "198.18.1.1"}}},
		{"hosts are case-insensitive", `{to: [{operation: {notHosts: [EVIL.example]}}]}`,
			[]caller{productpage}, []caller{{host: "evil.example"}}},
		{"paths template", `{to: [{operation: {paths: ["/reviews/{*}"]}}]}`,
			[]caller{{path: "/reviews/0"}}, []caller{{path: "/reviews/0/x"}, {path: "/ratings/0"}}},
		{"ports and methods", `{to: [{operation: {ports: ["9080"], methods: [GET]}}]}`,
			[]caller{{}}, []caller{{method: "POST"}, {port: 9090}}},
		{"when destination.port", `{when: [{key: destination.port, notValues: ["9090"]}]}`,
			[]caller{{}}, []caller{{port: 9090}}},
		{"when destination.ip", `{when: [{key: destination.ip, values: [198.18.0.9]}]}`,
			[]caller{{}}, nil},
		{"when request.headers", `{when: [{key: "request.headers[x-team]", values: ["a*"]}]}`,
			[]caller{{headers: map[string]string{"x-team": "alpha"}}}, []caller{{}, {headers: map[string]string{"x-team": "beta"}}}},
		{"requestPrincipals", `{from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}]}`,
			[]caller{alice}, []caller{productpage, {jwt: map[string]any{"request.auth.principal": "https://evil.example/alice"}}}},
		{"notRequestPrincipals presence", `{from: [{source: {notRequestPrincipals: ["*"]}}]}`,
			[]caller{productpage}, []caller{alice}},
		{"when request.auth.claims list", `{when: [{key: "request.auth.claims[groups]", values: [admin]}]}`,
			[]caller{alice}, []caller{bob, productpage}},
		{"when nested claim", `{when: [{key: "request.auth.claims[org][team]", values: [core]}]}`,
			[]caller{alice}, []caller{bob}},
		{"when request.auth.audiences and presenter", `{when: [{key: request.auth.audiences, values: [reviews]}, {key: request.auth.presenter, values: [web]}]}`,
			[]caller{alice}, []caller{bob}},
		{"when source.ip and source.namespace", `{when: [{key: source.ip, values: [198.18.0.0/16]}, {key: source.namespace, values: [bookinfo]}]}`,
			[]caller{productpage}, []caller{otherNS, {ns: "bookinfo", sa: "x", ip: "198.19.0.1"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := engine(t, parseRule(t, c.rule), false, true)
			for _, in := range c.in {
				if ok, _ := e.Allowed(in.request()); !ok {
					t.Errorf("%+v refused; the rule admits it", in)
				}
			}
			for _, out := range c.out {
				if ok, _ := e.Allowed(out.request()); ok {
					t.Errorf("%+v let in; the rule does not name it", out)
				}
			}
		})
	}
}

// Rules with parts the mesh cannot carry out: an ALLOW allows nobody, a
// DENY denies at least what it says (here everyone the rest matches).
func TestUnenforcedPartsFailClosed(t *testing.T) {
	cases := []struct {
		name, rule string
		http       bool
		want       string // in Unenforced
	}{
		{"request principals on TCP", `{from: [{source: {requestPrincipals: ["issuer/*"]}}]}`, false, "from[0].source.requestPrincipals"},
		{"not a claim path", `{when: [{key: "request.auth.claims.groups", values: [admin]}]}`, true, "when[0].key: request.auth.claims.groups"},
		{"unknown key", `{when: [{key: "destination.name", values: [x]}]}`, true, "when[0].key: destination.name"},
		{"HTTP field on TCP", `{to: [{operation: {paths: ["/admin"]}}]}`, false, "to[0].operation.paths"},
		{"header on TCP", `{when: [{key: "request.headers[x]", values: ["y"]}]}`, false, "when[0].key: request.headers[x]"},
		{"bad port", `{to: [{operation: {ports: ["http"]}}]}`, true, "to[0].operation.ports"},
		{"bad CIDR", `{from: [{source: {notIpBlocks: ["not-an-ip"]}}]}`, true, "from[0].source.ipBlocks"},
		{"wildcard service account", `{from: [{source: {serviceAccounts: ["bookinfo/*"]}}]}`, true, "from[0].source.serviceAccounts"},
		{"bad path template", `{to: [{operation: {notPaths: ["/{**}/x/{*}"]}}]}`, true, "to[0].operation.paths"},
		{"no values", `{when: [{key: source.ip}]}`, true, "when[0]: source.ip"},
	}
	everyone := []caller{productpage, ratings, otherNS, plaintext, {path: "/admin"}, {port: 9090}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rule := parseRule(t, c.rule)
			res := TranslateRule(rule, "bookinfo", c.http, false)
			if !strings.Contains(joined(res.Unenforced), c.want) {
				t.Errorf("unenforced %q; want it to name %s", res.Unenforced, c.want)
			}
			allow, deny := engine(t, rule, false, c.http), engine(t, rule, true, c.http)
			for _, r := range everyone {
				if ok, _ := allow.Allowed(r.request()); ok {
					t.Errorf("ALLOW let %+v in", r)
				}
				if ok, _ := deny.Allowed(r.request()); ok {
					t.Errorf("DENY let %+v in; dropping the part it cannot enforce must deny more", r)
				}
			}
		})
	}
}

// Every field the table calls enforced under spec.rules is translated:
// set alone to a valid value it yields a rule with no unenforced part.
func TestEnforcedRuleFieldsTranslate(t *testing.T) {
	values := map[string]string{"ipBlocks": "198.18.0.0/16", "remoteIpBlocks": "198.18.0.1", "ports": "9080",
		"serviceAccounts": "bookinfo/productpage", "key": "source.ip", "values": "198.18.0.1", "notValues": "198.18.0.2"}
	n := 0
	for path, e := range enforced.Entries("AuthorizationPolicy") {
		if !e.Enforced || !strings.HasPrefix(path, "spec.rules.") {
			continue
		}
		n++
		rule := &securityapi.Rule{}
		m := rule.ProtoReflect()
		parts := strings.Split(strings.TrimPrefix(path, "spec.rules."), ".")
		for i, part := range parts {
			fd := m.Descriptor().Fields().ByJSONName(part)
			if fd == nil {
				t.Fatalf("%s: no field %s in %s", path, part, m.Descriptor().FullName())
			}
			if i == len(parts)-1 {
				v := values[strings.TrimPrefix(strings.ToLower(part[:1])+part[1:], "not")]
				if v == "" {
					v = values[part]
				}
				if strings.HasPrefix(part, "not") && v == "" {
					low := strings.ToLower(part[3:4]) + part[4:]
					v = values[low]
				}
				if v == "" {
					v = "v"
				}
				if fd.IsList() {
					m.Mutable(fd).List().Append(protoreflect.ValueOfString(v))
				} else {
					m.Set(fd, protoreflect.ValueOfString(v))
				}
				break
			}
			if fd.IsList() {
				el := m.Mutable(fd).List().AppendMutable().Message()
				m = el
			} else {
				m = m.Mutable(fd).Message()
			}
		}
		if part := parts[len(parts)-1]; part == "key" {
			rule.When[0].Values = []string{"198.18.0.1"}
		}
		if c := rule.GetWhen(); len(c) > 0 && c[0].Key == "" {
			c[0].Key = "source.ip"
		}
		if res := TranslateRule(rule, "bookinfo", true, false); res.Permission == nil || len(res.Unenforced) > 0 {
			t.Errorf("%s is classified enforced but the translation says %q", path, res.Unenforced)
		}
	}
	if n < 20 {
		t.Errorf("only %d enforced rule fields; the table lost its AuthorizationPolicy entries", n)
	}
}

// Every key Condition calls enforced has a translation (none falls to
// "no translation"), on the port kinds it applies to.
func TestEnforcedConditionsTranslate(t *testing.T) {
	keys := []string{"source.ip", "remote.ip", "source.namespace", "source.principal", "source.serviceAccount",
		"destination.ip", "destination.port", "connection.sni", "request.headers[x-user]",
		"request.auth.principal", "request.auth.audiences", "request.auth.presenter", "request.auth.claims[groups]", "request.auth.claims[a][b]"}
	vals := map[string]string{"source.ip": "198.18.0.1", "remote.ip": "198.18.0.1", "destination.ip": "198.18.0.1", "destination.port": "80", "source.serviceAccount": "ns/sa"}
	for _, k := range keys {
		if !enforced.Condition(k).Enforced {
			t.Errorf("%s: Condition says not enforced", k)
			continue
		}
		rule := &securityapi.Rule{When: []*securityapi.Condition{{Key: k, Values: []string{orDefault(vals[k], "v")}}}}
		if res := TranslateRule(rule, "bookinfo", true, false); res.Permission == nil {
			t.Errorf("%s: not translated: %q", k, res.Unenforced)
		}
	}
}
