package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"mesh.dev/mesh/internal/syncstatus"
)

// securityWorld is Bookinfo on the mesh under STRICT mTLS with two
// callers of productpage that differ in every source attribute: the
// ingress gateway (namespace mesh-system, its own service account, its pod
// IP), reached from the test over plaintext HTTP, and the ratings pod
// (namespace bookinfo, bookinfo-ratings), whose app container runs curl
// through its sidecar (`kubectl exec`, as a user debugging would).
type securityWorld struct {
	e *env
	m *meshOnBookinfo

	gwIP, gwSA, gwPrincipal string
	ratings                 *corev1.Pod
}

func (e *env) securityWorld() *securityWorld {
	e.t.Helper()
	m := e.bookinfoOnMesh()
	e.apply("bookinfo", []byte(securityApps))
	e.adopt("bookinfo", 2)
	gw := e.pod("mesh-system", "app=mesh-ingressgateway")
	w := &securityWorld{e: e, m: m, gwIP: gw.Status.PodIP, gwSA: gw.Spec.ServiceAccountName, ratings: e.pod("bookinfo", "app=ratings")}
	w.gwPrincipal = "cluster.local/ns/mesh-system/sa/" + w.gwSA
	// What an earlier run of this test may have left.
	for _, name := range []string{"sources", "jwt", "unenforced", "ext", "audit", "deny-ratings"} {
		w.deleteObject("authorizationpolicies", name)
	}
	w.deleteObject("requestauthentications", "jwt")
	w.deleteObject("peerauthentications", "stray")
	if err := dynamic.NewForConfigOrDie(e.c.RESTConfig()).Resource(schema.GroupVersionResource{Group: "telemetry.istio.io", Version: "v1", Resource: "telemetries"}).
		Namespace("bookinfo").Delete(context.Background(), "audit-log", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatal(err)
	}
	return w
}

// reply is what a caller got: status 0 when no HTTP answer came.
type reply struct {
	code int
	hdr  http.Header
	body string
	err  error
}

func (r reply) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.code, strings.TrimSpace(r.body[:min(len(r.body), 120)]))
}

// viaGateway sends GET path to the ingress gateway with the headers.
func (w *securityWorld) viaGateway(path string, hdr ...string) reply {
	req, err := http.NewRequest(http.MethodGet, "http://"+w.gwIP+":8080"+path, nil)
	if err != nil {
		w.e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := w.m.client.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, hdr: resp.Header, body: string(b)}
}

// fromRatings has ratings' app container GET url through its sidecar.
func (w *securityWorld) fromRatings(url string) reply {
	out, stderr, err := w.e.exec(w.ratings, "ratings", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", url)
	code, _ := strconv.Atoi(strings.TrimSpace(out))
	if code == 0 {
		return reply{err: fmt.Errorf("curl in ratings: %q %q %v", out, stderr, err)}
	}
	return reply{code: code}
}

// exec runs cmd in the container of p as `kubectl exec` does, through the
// API server and the runtime's kubelet endpoint.
func (e *env) exec(p *corev1.Pod, container string, cmd ...string) (string, string, error) {
	req := e.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.Namespace).Name(p.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(e.c.RESTConfig(), http.MethodPost, req.URL())
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	return out.String(), errOut.String(), err
}

// callers is what the two callers of productpage's page get.
func (w *securityWorld) callers() (gw, ratings reply) {
	return w.viaGateway("/productpage"), w.fromRatings("http://productpage:9080/productpage")
}

// converge waits until the gateway and ratings get the wanted statuses
// three rounds in a row: the config reached productpage's sidecar.
func (w *securityWorld) converge(what string, wantGW, wantRatings int) {
	w.e.t.Helper()
	streak := 0
	w.e.waitFor(what, 2*time.Minute, func() (bool, string) {
		gw, r := w.callers()
		if gw.code != wantGW || r.code != wantRatings {
			streak = 0
			return false, fmt.Sprintf("gateway %s; ratings %s", gw, r)
		}
		streak++
		return streak >= 3, fmt.Sprintf("%d rounds in a row", streak)
	})
}

func (w *securityWorld) dyn() dynamic.Interface {
	return dynamic.NewForConfigOrDie(w.e.c.RESTConfig())
}

func securityResource(plural string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: plural}
}

func (w *securityWorld) deleteObject(plural, name string) {
	w.e.t.Helper()
	err := w.dyn().Resource(securityResource(plural)).Namespace("bookinfo").Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		w.e.t.Fatal(err)
	}
}

// policy is an AuthorizationPolicy on productpage.
func policy(name, action, rules string) []byte {
	s := "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " + name + "}\nspec:\n  selector: {matchLabels: {app: productpage}}\n  action: " + action + "\n"
	if rules != "" {
		s += "  rules: " + rules + "\n"
	}
	return []byte(s)
}

// TestSecurityWithRealSidecars: AuthorizationPolicy, PeerAuthentication,
// RequestAuthentication and CUSTOM policies carried out by the mesh-proxy
// sidecars pilot's webhook injected into Bookinfo on the sandbox runtime,
// each in its pod's network namespace, for real callers with real
// identities: what each allows and denies, and what the mesh says when a
// policy uses what it does not carry out.
func TestSecurityWithRealSidecars(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	w := e.securityWorld()
	w.converge("both callers served before any policy", 200, 200)
	step := func(name string, f func(*securityWorld)) {
		t.Run(name, func(t *testing.T) {
			sub := *w
			se := *e
			se.t = t
			sub.e = &se
			f(&sub)
		})
		if t.Failed() {
			t.FailNow()
		}
	}
	step("source fields", testSourceFields)
	step("not enforced: denies everyone, status and analyze say so, cleared when fixed", testNotEnforcedStatus)
	step("STRICT on a port no Service names", testStrictOffServicePort)
	step("JWT", testJWT)
	w.withSecurityMesh()
	step("CUSTOM", testCustom)
	step("AUDIT", testAudit)
	for _, d := range []string{"stray", "ext-authz"} {
		if err := e.cs.AppsV1().Deployments("bookinfo").Delete(context.Background(), d, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	if err := e.cs.CoreV1().Services("bookinfo").Delete(context.Background(), "ext-authz", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

// testSourceFields: for each source field of an AuthorizationPolicy rule
// (and each source condition of `when`), an ALLOW or DENY policy on
// productpage that lets one of the two callers in and not the other, or
// both, or neither. Before each case the sidecar is brought to a state
// the case's outcome differs from (no policy: both served; an ALLOW
// policy without rules: both denied), so an outcome seen is the case's.
func testSourceFields(w *securityWorld) {
	gwIP, ratingsIP := w.gwIP, w.ratings.Status.PodIP
	from := func(field, values string) string {
		return "[{from: [{source: {" + field + ": " + values + "}}]}]"
	}
	when := func(key, op, values string) string {
		return "[{when: [{key: " + key + ", " + op + ": " + values + "}]}]"
	}
	q := func(s string) string { return `["` + s + `"]` }
	cases := []struct {
		name, action, rules string
		gw, ratings         int
	}{
		{"principals", "ALLOW", from("principals", q(w.gwPrincipal)), 200, 403},
		{"notPrincipals", "ALLOW", from("notPrincipals", q(w.gwPrincipal)), 403, 200},
		{"principals prefix*", "ALLOW", from("principals", q("cluster.local/ns/bookinfo/*")), 403, 200},
		{"serviceAccounts ns/sa", "ALLOW", from("serviceAccounts", q("mesh-system/"+w.gwSA)), 200, 403},
		{"serviceAccounts bare sa (the policy's namespace)", "ALLOW", from("serviceAccounts", q("bookinfo-ratings")), 403, 200},
		{"notServiceAccounts", "ALLOW", from("notServiceAccounts", q("bookinfo/bookinfo-ratings")), 200, 403},
		{"namespaces", "ALLOW", from("namespaces", q("mesh-system")), 200, 403},
		{"notNamespaces", "ALLOW", from("notNamespaces", q("mesh-system")), 403, 200},
		{"trustDomains of the mesh", "ALLOW", from("trustDomains", q("cluster.local")), 200, 200},
		{"trustDomains of another mesh", "ALLOW", from("trustDomains", q("example.org")), 403, 403},
		{"notTrustDomains", "ALLOW", from("notTrustDomains", q("cluster.local")), 403, 403},
		{"ipBlocks", "ALLOW", from("ipBlocks", q(gwIP+"/32")), 200, 403},
		{"notIpBlocks", "ALLOW", from("notIpBlocks", q(gwIP+"/32")), 403, 200},
		// The gateway's request carries the test's address in X-Forwarded-For:
		// not ratings' address in Istio's reading or in the mesh's (the peer).
		{"remoteIpBlocks", "ALLOW", from("remoteIpBlocks", q(ratingsIP)), 403, 200},
		{"notRemoteIpBlocks", "ALLOW", from("notRemoteIpBlocks", q(ratingsIP)), 200, 403},
		{"when source.principal", "ALLOW", when("source.principal", "values", q(w.gwPrincipal)), 200, 403},
		{"when source.namespace notValues", "ALLOW", when("source.namespace", "notValues", q("mesh-system")), 403, 200},
		{"when source.serviceAccount", "ALLOW", when("source.serviceAccount", "values", q("bookinfo/bookinfo-ratings")), 403, 200},
		{"when source.ip", "ALLOW", when("source.ip", "values", q(gwIP)), 200, 403},
		{"when remote.ip notValues", "ALLOW", when("remote.ip", "notValues", q(ratingsIP)), 200, 403},
		{"DENY serviceAccounts", "DENY", from("serviceAccounts", q("bookinfo/bookinfo-ratings")), 200, 403},
		{"DENY namespaces", "DENY", from("namespaces", q("mesh-system")), 403, 200},
		{"DENY notPrincipals", "DENY", from("notPrincipals", q(w.gwPrincipal)), 200, 403},
	}
	state := [2]int{200, 200}
	for _, c := range cases {
		want := [2]int{c.gw, c.ratings}
		if want == state {
			if want == [2]int{200, 200} {
				w.e.apply("bookinfo", policy("sources", "ALLOW", ""))
				w.converge("an ALLOW policy without rules on productpage: both denied", 403, 403)
			} else {
				w.deleteObject("authorizationpolicies", "sources")
				w.converge("no policy on productpage: both served", 200, 200)
			}
		}
		w.e.apply("bookinfo", policy("sources", c.action, c.rules))
		w.converge(fmt.Sprintf("%s %s %s: gateway %d, ratings %d", c.action, c.name, c.rules, c.gw, c.ratings), c.gw, c.ratings)
		w.e.t.Logf("%s %s: gateway %d, ratings %d", c.action, c.name, c.gw, c.ratings)
		state = want
	}
	w.deleteObject("authorizationpolicies", "sources")
	w.converge("no policy on productpage: both served", 200, 200)
}

// testNotEnforcedStatus: an ALLOW rule whose only condition is one the
// mesh does not carry out (an experimental.envoy.filters key) allows
// nobody; pilot writes Istio's status on the policy saying so, and `mesh
// analyze` reports MSH0003 with the field path. Once the rule is fixed,
// the policy is carried out and both reports are gone.
func testNotEnforcedStatus(w *securityWorld) {
	e := w.e
	const path = "spec.rules[0].when[0].key"
	e.apply("bookinfo", policy("unenforced", "ALLOW", `[{when: [{key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"]}]}]`))
	w.converge("the ALLOW rule with an unenforced condition allows nobody", 403, 403)
	e.waitFor("pilot's status on the policy naming "+path, 2*time.Minute, func() (bool, string) {
		msgs, conds := w.status("unenforced")
		ok := strings.Contains(msgs, "MSH0003") && strings.Contains(conds, "mesh.io/Enforced False NotEnforced") && strings.Contains(conds, path)
		return ok, "validationMessages " + msgs + "; conditions " + conds
	})
	out := e.analyze("bookinfo")
	if !analyzeNames(out, "Warning [MSH0003] (AuthorizationPolicy unenforced.bookinfo", path+" is not enforced", "allows nobody") {
		e.t.Fatalf("mesh analyze -n bookinfo: want MSH0003 on AuthorizationPolicy unenforced.bookinfo naming %s and that the rule allows nobody:\n%s", path, out)
	}

	e.apply("bookinfo", policy("unenforced", "ALLOW", `[{from: [{source: {namespaces: ["mesh-system"]}}]}]`))
	w.converge("the fixed policy carried out: the gateway in, ratings not", 200, 403)
	e.waitFor("pilot's status on the fixed policy cleared", 2*time.Minute, func() (bool, string) {
		msgs, conds := w.status("unenforced")
		return msgs == "" && !strings.Contains(conds, "mesh.io/Enforced"), "validationMessages " + msgs + "; conditions " + conds
	})
	if out := e.analyze("bookinfo"); analyzeNames(out, "MSH0003", "unenforced.bookinfo") {
		e.t.Fatalf("mesh analyze -n bookinfo after the fix: want no MSH0003 on unenforced.bookinfo:\n%s", out)
	}
	w.deleteObject("authorizationpolicies", "unenforced")
	w.converge("no policy on productpage: both served", 200, 200)
}

// analyze runs `mesh analyze -n ns` against the cluster; exit 79 (some
// message at the failure threshold, about anything in ns) is not an error.
func (e *env) analyze(ns string) string {
	e.t.Helper()
	out, err := e.mesh(2*time.Minute, "analyze", "-n", ns)
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 79) {
		e.t.Fatalf("mesh analyze -n %s: %v\n%s", ns, err, out)
	}
	return out
}

// analyzeNames reports whether one line of analyze's output has every part.
func analyzeNames(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// status returns the AuthorizationPolicy's status.validationMessages
// (codes) and conditions (type status reason message), each joined.
func (w *securityWorld) status(name string) (string, string) {
	obj, err := w.dyn().Resource(securityResource("authorizationpolicies")).Namespace("bookinfo").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err.Error(), ""
	}
	st, _ := obj.Object["status"].(map[string]any)
	var msgs, conds []string
	if vm, ok := st["validationMessages"].([]any); ok {
		for _, m := range vm {
			mm, _ := m.(map[string]any)
			typ, _ := mm["type"].(map[string]any)
			msgs = append(msgs, fmt.Sprint(typ["code"], " ", mm["level"]))
		}
	}
	if cs, ok := st["conditions"].([]any); ok {
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			conds = append(conds, fmt.Sprint(cm["type"], " ", cm["status"], " ", cm["reason"], " ", cm["message"]))
		}
	}
	return strings.Join(msgs, "; "), strings.Join(conds, "; ")
}

// securityApps are a Deployment serving on a port no Service names, and
// the sample app's ext-authz role behind a Service, in bookinfo.
const securityApps = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: stray}
spec:
  replicas: 1
  selector: {matchLabels: {app: stray}}
  template:
    metadata: {labels: {app: stray}}
    spec:
      containers:
      - name: stray
        image: mesh.dev/mesh-sample:demo
        args: [--role=details, --listen=:7070]
        ports: [{containerPort: 7070}]
---
apiVersion: v1
kind: Service
metadata: {name: ext-authz}
spec:
  selector: {app: ext-authz}
  ports: [{name: http, port: 8000}, {name: grpc, port: 9000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ext-authz}
spec:
  replicas: 1
  selector: {matchLabels: {app: ext-authz}}
  template:
    metadata: {labels: {app: ext-authz}}
    spec:
      containers:
      - name: ext-authz
        image: mesh.dev/mesh-sample:demo
        args: [--role=ext-authz, --listen=:8000, --ext-authz-grpc-listen=:9000]
        ports: [{name: http, containerPort: 8000}, {name: grpc, containerPort: 9000}]
        readinessProbe: {tcpSocket: {port: 8000}, periodSeconds: 1}
`

// testStrictOffServicePort: under the namespace's STRICT
// PeerAuthentication, plaintext from outside the mesh to a pod port that
// no Service names is refused by the pod's sidecar (the 15006 passthrough
// chains), while the proxy's health port stays outside capture; a
// workload policy's portLevelMtls and mode open and close that port, so
// the refusals are STRICT's and not an absent app's.
func testStrictOffServicePort(w *securityWorld) {
	e := w.e
	stray := e.pod("bookinfo", "app=stray")
	url := "http://" + stray.Status.PodIP + ":7070/details/0"
	plaintext := func() reply {
		resp, err := w.m.client.Get(url)
		if err != nil {
			return reply{err: err}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{code: resp.StatusCode, body: string(b)}
	}
	refused := func(what string) {
		e.t.Helper()
		streak := 0
		e.waitFor(what, 2*time.Minute, func() (bool, string) {
			r := plaintext()
			if r.err == nil {
				streak = 0
				return false, "plaintext answered: " + r.String()
			}
			streak++
			return streak >= 3, r.String()
		})
	}
	served := func(what string) {
		e.t.Helper()
		e.waitFor(what, 2*time.Minute, func() (bool, string) {
			r := plaintext()
			return r.code == 200 && strings.Contains(r.body, "William Shakespeare"), r.String()
		})
	}
	refused("namespace STRICT: plaintext to port 7070 (no Service names it) refused")
	if r, err := w.m.client.Get("http://" + stray.Status.PodIP + ":15021/healthz/ready"); err != nil {
		e.t.Fatalf("the sidecar's health port under STRICT: %v; want it reachable (outside capture)", err)
	} else {
		r.Body.Close()
		if r.StatusCode != 200 {
			e.t.Fatalf("the sidecar's health port under STRICT: %s, want 200", r.Status)
		}
	}
	pa := func(spec string) []byte {
		return []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: stray}\nspec:\n  selector: {matchLabels: {app: stray}}\n" + spec)
	}
	e.apply("bookinfo", pa("  mtls: {mode: STRICT}\n  portLevelMtls: {7070: {mode: PERMISSIVE}}\n"))
	served("workload STRICT with portLevelMtls 7070 PERMISSIVE: plaintext to 7070 served")
	e.apply("bookinfo", pa("  mtls: {mode: PERMISSIVE}\n  portLevelMtls: {7070: {mode: STRICT}}\n"))
	refused("workload PERMISSIVE with portLevelMtls 7070 STRICT: plaintext to 7070 refused")
	e.apply("bookinfo", pa("  mtls: {mode: PERMISSIVE}\n"))
	served("workload PERMISSIVE: plaintext to 7070 served")
	w.deleteObject("peerauthentications", "stray")
	refused("workload policy gone, namespace STRICT again: plaintext to 7070 refused")
}

const jwtIssuer = "https://issuer.bookinfo.test"

// jwtKeys signs tokens as the test's issuer (and as a forger).
type jwtKeys struct {
	issuer, forger *rsa.PrivateKey
}

// token is a JWT with the claims, signed by key with header kid.
func (k jwtKeys) token(t *testing.T, key *rsa.PrivateKey, kid, iss, sub, aud string, exp time.Duration, extra map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := jwt.Claims{Issuer: iss, Subject: sub, Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)), Expiry: jwt.NewNumericDate(now.Add(exp))}
	b := jwt.Signed(sig).Claims(c)
	if extra != nil {
		b = b.Claims(extra)
	}
	s, err := b.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testJWT: a RequestAuthentication on productpage with the issuer's keys
// inline and an audience, and ALLOW policies on request principals and
// claims. Through the gateway (which forwards the token), a valid token is
// served, a present but invalid one (expired, forged, wrong audience,
// wrong issuer, unknown key, not a JWT) gets 401 from productpage's
// sidecar, and a request without one continues without a principal, which
// the ALLOW policy denies (403).
func testJWT(w *securityWorld) {
	e, t := w.e, w.e.t
	var keys jwtKeys
	var err error
	if keys.issuer, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if keys.forger, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &keys.issuer.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := json.Marshal(map[string]any{
		"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication", "metadata": map[string]any{"name": "jwt"},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "productpage"}},
			"jwtRules": []any{map[string]any{"issuer": jwtIssuer, "audiences": []string{"bookinfo"}, "jwks": string(jwks)}}},
	})
	e.apply("bookinfo", ra)
	e.apply("bookinfo", policy("jwt", "ALLOW", `[{from: [{source: {requestPrincipals: ["`+jwtIssuer+`/alice"]}}]}]`))

	tok := func(key *rsa.PrivateKey, kid, iss, sub, aud string, exp time.Duration, extra map[string]any) string {
		return keys.token(t, key, kid, iss, sub, aud, exp, extra)
	}
	alice := tok(keys.issuer, "k1", jwtIssuer, "alice", "bookinfo", time.Hour, map[string]any{"groups": []string{"reviewers"}})
	bob := tok(keys.issuer, "k1", jwtIssuer, "bob", "bookinfo", time.Hour, nil)
	bearer := func(token string) []string {
		if token == "" {
			return nil
		}
		return []string{"Authorization", "Bearer " + token}
	}
	// ask retries only when no HTTP answer came: a wrong status fails.
	ask := func(what, token string, want int) {
		t.Helper()
		var r reply
		for i := 0; i < 5; i++ {
			if r = w.viaGateway("/productpage", bearer(token)...); r.err == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if r.code != want {
			t.Errorf("%s: %s, want %d", what, r, want)
		}
	}
	converge := func(what string, want map[string]int, tokens map[string]string) {
		t.Helper()
		streak := 0
		e.waitFor(what, 2*time.Minute, func() (bool, string) {
			var bad []string
			for name, code := range want {
				if r := w.viaGateway("/productpage", bearer(tokens[name])...); r.code != code {
					bad = append(bad, fmt.Sprintf("%s: %s, want %d", name, r, code))
				}
			}
			if len(bad) > 0 {
				streak = 0
				return false, strings.Join(bad, "; ")
			}
			streak++
			return streak >= 3, fmt.Sprintf("%d rounds in a row", streak)
		})
	}
	tokens := map[string]string{"alice": alice, "bob": bob, "none": ""}
	converge("requestPrincipals [iss/alice]: alice served, bob and no token denied", map[string]int{"alice": 200, "bob": 403, "none": 403}, tokens)
	ask("an expired token", tok(keys.issuer, "k1", jwtIssuer, "alice", "bookinfo", -10*time.Minute, nil), 401)
	ask("a token signed by another key under the issuer's kid", tok(keys.forger, "k1", jwtIssuer, "alice", "bookinfo", time.Hour, nil), 401)
	ask("a token for another audience", tok(keys.issuer, "k1", jwtIssuer, "alice", "shop", time.Hour, nil), 401)
	ask("a token of another issuer", tok(keys.issuer, "k1", "https://other.test", "alice", "bookinfo", time.Hour, nil), 401)
	ask("a token with an unknown kid", tok(keys.issuer, "k9", jwtIssuer, "alice", "bookinfo", time.Hour, nil), 401)
	ask("a bearer value that is no JWT", "not.a.jwt", 401)
	ask("no token", "", 403)
	ask("a valid token", alice, 200)
	if r := w.viaGateway("/productpage?access_token=" + alice); r.code != 200 {
		t.Errorf("a valid token in access_token: %s, want 200", r)
	}

	e.apply("bookinfo", policy("jwt", "ALLOW", `[{from: [{source: {requestPrincipals: ["*"], notRequestPrincipals: ["`+jwtIssuer+`/alice"]}}]}]`))
	converge("requestPrincipals [*] notRequestPrincipals [iss/alice]: bob served, alice and no token denied", map[string]int{"alice": 403, "bob": 200, "none": 403}, tokens)
	e.apply("bookinfo", policy("jwt", "ALLOW", `[{when: [{key: "request.auth.claims[groups]", values: ["reviewers"]}]}]`))
	converge("when request.auth.claims[groups] reviewers: alice served, bob and no token denied", map[string]int{"alice": 200, "bob": 403, "none": 403}, tokens)

	w.deleteObject("authorizationpolicies", "jwt")
	w.deleteObject("requestauthentications", "jwt")
	w.converge("no policy on productpage: both served", 200, 200)
}

// securityMesh is the demo profile with the ext-authz service as four
// providers (HTTP and gRPC, each failing closed and open) and a file access log
// that shows AUDIT's mark, for a Telemetry to select.
const securityMesh = `apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  profile: demo
  meshConfig:
    extensionProviders:
    - name: ext-authz-http
      envoyExtAuthzHttp:
        service: ext-authz.bookinfo.svc.cluster.local
        port: 8000
        includeRequestHeadersInCheck: [x-ext-authz]
        headersToDownstreamOnAllow: [x-ext-authz-check-result]
    - name: ext-authz-http-open
      envoyExtAuthzHttp:
        service: ext-authz.bookinfo.svc.cluster.local
        port: 8000
        failOpen: true
        includeRequestHeadersInCheck: [x-ext-authz]
        headersToDownstreamOnAllow: [x-ext-authz-check-result]
    - name: ext-authz-grpc
      envoyExtAuthzGrpc:
        service: ext-authz.bookinfo.svc.cluster.local
        port: 9000
    - name: ext-authz-grpc-open
      envoyExtAuthzGrpc:
        service: ext-authz.bookinfo.svc.cluster.local
        port: 9000
        failOpen: true
    - name: audit-log
      envoyFileAccessLog:
        path: /dev/stdout
        logFormat:
          text: "audit-line %REQ(:PATH)% %RESPONSE_CODE% hint=%DYNAMIC_METADATA(envoy.common:access_log_hint)%\n"
`

// withSecurityMesh installs securityMesh and restarts pilot, which reads
// the mesh config at start, waiting until every proxy is SYNCED with the
// new pilot.
func (w *securityWorld) withSecurityMesh() {
	e := w.e
	e.t.Helper()
	file := e.t.TempDir() + "/mesh.yaml"
	if err := os.WriteFile(file, []byte(securityMesh), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if out, err := e.mesh(3*time.Minute, "install", "-f", file, "-y", "--readiness-timeout", "60s"); err != nil {
		e.t.Fatalf("install with the providers: %v\n%s", err, out)
	}
	old := e.pod("mesh-system", "app=mesh-pilot")
	zero := int64(0)
	if err := e.cs.CoreV1().Pods("mesh-system").Delete(context.Background(), old.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		e.t.Fatal(err)
	}
	var debug string
	e.waitFor("a new pilot pod Ready", 3*time.Minute, func() (bool, string) {
		pods, err := e.cs.CoreV1().Pods("mesh-system").List(context.Background(), metav1.ListOptions{LabelSelector: "app=mesh-pilot"})
		if err != nil {
			return false, err.Error()
		}
		var state []string
		for _, p := range pods.Items {
			if p.UID != old.UID && p.DeletionTimestamp == nil && podReady(&p) {
				debug = net.JoinHostPort(p.Status.PodIP, strconv.Itoa(syncstatus.DebugPort))
				return true, ""
			}
			state = append(state, fmt.Sprintf("%s ready=%v", p.Name, podReady(&p)))
		}
		return false, strings.Join(state, "; ")
	})
	want := e.meshProxies()
	e.waitFor("every proxy SYNCED with the new pilot", 3*time.Minute, func() (bool, string) { return allSynced(debug, want) })
}

// testCustom: CUSTOM policies on productpage's page checked by the sample
// app's ext-authz role (a pod of the mesh, reached over mTLS) over Envoy's
// gRPC and HTTP protocols: the allowed request served with the service's header,
// denied ones refused with its status and reason, a path the policy does
// not select never checked; with the service down, over either protocol,
// failOpen false refuses even what it would allow, failOpen true lets
// everything through unchecked; when it is back, its decisions are made
// again.
func testCustom(w *securityWorld) {
	e, t := w.e, w.e.t
	ext := func(provider string) []byte {
		return []byte("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext}\nspec:\n  selector: {matchLabels: {app: productpage}}\n  action: CUSTOM\n  provider: {name: " + provider + "}\n  rules: [{to: [{operation: {paths: [/productpage]}}]}]\n")
	}
	allow, deny := []string{"x-ext-authz", "allow"}, []string{"x-ext-authz", "deny"}
	type want struct {
		code   int
		result string // the service's x-ext-authz-check-result header, "" for none
		body   string // a part of the body, "" for any
	}
	check := func(r reply, wt want) bool {
		return r.code == wt.code && r.hdr.Get("x-ext-authz-check-result") == wt.result && strings.Contains(r.body, wt.body)
	}
	converge := func(what string, cases map[string]want) {
		t.Helper()
		hdrs := map[string][]string{"allow": allow, "deny": deny, "none": nil}
		streak := 0
		e.waitFor(what, 2*time.Minute, func() (bool, string) {
			var bad []string
			for name, wt := range cases {
				path := "/productpage"
				if name == "unselected" {
					path = "/static/nothing"
				}
				if r := w.viaGateway(path, hdrs[name]...); !check(r, wt) {
					bad = append(bad, fmt.Sprintf("%s: %s result=%q, want %+v", name, r, r.hdr.Get("x-ext-authz-check-result"), wt))
				}
			}
			if len(bad) > 0 {
				streak = 0
				return false, strings.Join(bad, "; ")
			}
			streak++
			return streak >= 3, fmt.Sprintf("%d rounds in a row", streak)
		})
	}
	denied := want{403, "denied", "denied by ext-authz"}

	// Over gRPC the service's OK headers go to the upstream request, not
	// the response; a denial's headers and body reach the caller.
	e.apply("bookinfo", ext("ext-authz-grpc"))
	converge("CUSTOM over gRPC: allow served, deny and none refused with the service's reason, the unselected path unchecked", map[string]want{
		"allow": {200, "", "reviews-"}, "deny": denied, "none": denied, "unselected": {404, "", ""}})

	e.apply("bookinfo", ext("ext-authz-http"))
	converge("CUSTOM over HTTP: allow served with the service's header, deny and none refused, the unselected path unchecked", map[string]want{
		"allow": {200, "allowed", "reviews-"}, "deny": denied, "none": denied, "unselected": {404, "", ""}})

	scale := func(n int32) {
		t.Helper()
		s, err := e.cs.AppsV1().Deployments("bookinfo").GetScale(context.Background(), "ext-authz", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Spec.Replicas = n
		if _, err := e.cs.AppsV1().Deployments("bookinfo").UpdateScale(context.Background(), "ext-authz", s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scale(0)
	converge("the service down, failOpen false: everything the policy selects refused (403), unchecked", map[string]want{
		"allow": {403, "", ""}, "none": {403, "", ""}, "unselected": {404, "", ""}})
	e.apply("bookinfo", ext("ext-authz-http-open"))
	converge("the service down, failOpen true: everything served, unchecked", map[string]want{
		"allow": {200, "", "reviews-"}, "deny": {200, "", "reviews-"}, "none": {200, "", "reviews-"}})
	e.apply("bookinfo", ext("ext-authz-grpc"))
	converge("the service down, gRPC, failOpen false: everything the policy selects refused (403), unchecked", map[string]want{
		"allow": {403, "", ""}, "deny": {403, "", ""}, "unselected": {404, "", ""}})
	e.apply("bookinfo", ext("ext-authz-grpc-open"))
	converge("the service down, gRPC, failOpen true: everything served, unchecked", map[string]want{
		"allow": {200, "", "reviews-"}, "deny": {200, "", "reviews-"}, "none": {200, "", "reviews-"}})
	scale(1)
	e.adopt("bookinfo", 2)
	// The gRPC channel failed all through the outage; checks reach the
	// service again once it is back.
	converge("the service back, gRPC: its decisions again", map[string]want{
		"allow": {200, "", "reviews-"}, "deny": denied, "none": denied})
	e.apply("bookinfo", ext("ext-authz-http-open"))
	converge("the service back, HTTP: its decisions again", map[string]want{
		"allow": {200, "allowed", "reviews-"}, "deny": denied, "none": denied})
	w.deleteObject("authorizationpolicies", "ext")
	w.converge("no policy on productpage: both served", 200, 200)
}

// testAudit: an AUDIT policy on productpage's page decides nothing (both
// callers served, and with a DENY policy ratings still refused) and marks
// what it selects in productpage's access log (access_log_hint true, also
// on the denied request), leaving other paths unmarked.
func testAudit(w *securityWorld) {
	e, t := w.e, w.e.t
	e.apply("bookinfo", []byte("apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: audit-log}\nspec:\n  selector: {matchLabels: {app: productpage}}\n  accessLogging: [{providers: [{name: audit-log}], match: {mode: SERVER}}]\n"))
	e.apply("bookinfo", policy("audit", "AUDIT", `[{to: [{operation: {paths: [/productpage]}}]}]`))
	pp := e.pod("bookinfo", "app=productpage")
	logHas := func(parts ...string) (bool, string) {
		b, err := e.cs.CoreV1().Pods("bookinfo").GetLogs(pp.Name, &corev1.PodLogOptions{Container: "mesh-proxy"}).DoRaw(context.Background())
		if err != nil {
			return false, err.Error()
		}
		var last string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "audit-line ") {
				last = line
				if analyzeNames(line, parts...) {
					return true, ""
				}
			}
		}
		return false, "last audit-line: " + last
	}
	e.waitFor("productpage's access log marks an audited request", 2*time.Minute, func() (bool, string) {
		w.viaGateway("/productpage")
		return logHas("audit-line /productpage 200 hint=true")
	})
	w.converge("AUDIT alone changes no decision", 200, 200)
	w.viaGateway("/static/nothing")
	e.waitFor("a path the AUDIT rule does not select is not marked", time.Minute, func() (bool, string) {
		return logHas("audit-line /static/nothing 404 hint=false")
	})
	e.apply("bookinfo", policy("deny-ratings", "DENY", `[{from: [{source: {serviceAccounts: ["bookinfo/bookinfo-ratings"]}}]}]`))
	w.converge("AUDIT and DENY ratings: the gateway served, ratings refused", 200, 403)
	e.waitFor("the request DENY refused is still marked", time.Minute, func() (bool, string) {
		w.fromRatings("http://productpage:9080/productpage")
		return logHas("audit-line /productpage 403 hint=true")
	})
	_ = t
	w.deleteObject("authorizationpolicies", "deny-ratings")
	w.deleteObject("authorizationpolicies", "audit")
	if err := dynamic.NewForConfigOrDie(e.c.RESTConfig()).Resource(schema.GroupVersionResource{Group: "telemetry.istio.io", Version: "v1", Resource: "telemetries"}).
		Namespace("bookinfo").Delete(context.Background(), "audit-log", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	w.converge("no policy on productpage: both served", 200, 200)
}
