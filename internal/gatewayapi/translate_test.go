package gatewayapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/credential"
)

func world() Input {
	class := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Generation: 1},
		Spec: gwv1.GatewayClassSpec{ControllerName: ControllerName}}
	other := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "example.com/other"}}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "infra", Generation: 2},
		Spec: gwv1.GatewaySpec{GatewayClassName: "mesh", Listeners: []gwv1.Listener{
			{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType,
				AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}}},
			{Name: "tcp", Port: 9000, Protocol: gwv1.TCPProtocolType},
		}}}
	svc := func(ns, name, ip string, port int32) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Port: port}}}}
	}
	route := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop", Generation: 3},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web", Namespace: ptr(gwv1.Namespace("infra"))}}},
			Hostnames:       []gwv1.Hostname{"shop.example.com"},
			Rules: []gwv1.HTTPRouteRule{
				{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/cart")}}},
					BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "cart", Port: ptr(gwv1.PortNumber(8080))}}}}},
				{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
					Name: "catalog", Namespace: ptr(gwv1.Namespace("catalog")), Port: ptr(gwv1.PortNumber(80))}}}}},
			},
		}}
	return Input{
		Classes:    []*gwv1.GatewayClass{class, other},
		Gateways:   []*gwv1.Gateway{gw},
		HTTPRoutes: []*gwv1.HTTPRoute{route},
		Services: []*corev1.Service{
			svc("infra", "web-mesh", "198.19.0.10", 80), svc("shop", "cart", "198.19.0.11", 8080), svc("catalog", "catalog", "198.19.0.12", 80),
		},
	}
}

func cond(t *testing.T, conds []metav1.Condition, typ string) metav1.Condition {
	t.Helper()
	c := apimeta.FindStatusCondition(conds, typ)
	if c == nil {
		t.Fatalf("no %s condition in %+v", typ, conds)
	}
	return *c
}

func TestTranslate(t *testing.T) {
	out := Translate(world())
	if _, ok := out.Classes["other"]; ok {
		t.Error("status written for another controller's class")
	}
	if c := cond(t, out.Classes["mesh"].Conditions, "Accepted"); c.Status != metav1.ConditionTrue || c.ObservedGeneration != 1 {
		t.Errorf("class Accepted = %+v", c)
	}
	gs := out.GatewayStatus["infra/web"]
	if c := cond(t, gs.Conditions, "Accepted"); c.Status != metav1.ConditionTrue || c.Reason != "ListenersNotValid" || c.ObservedGeneration != 2 {
		t.Errorf("gateway Accepted = %+v (one listener is TCP)", c)
	}
	if c := cond(t, gs.Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("gateway Programmed = %+v", c)
	}
	if len(gs.Addresses) != 1 || gs.Addresses[0].Value != "198.19.0.10" {
		t.Errorf("addresses = %+v, want the Service's cluster IP", gs.Addresses)
	}
	if len(gs.Listeners) != 2 || gs.Listeners[0].AttachedRoutes != 1 || cond(t, gs.Listeners[1].Conditions, "Accepted").Reason != "UnsupportedProtocol" {
		t.Errorf("listeners = %+v", gs.Listeners)
	}
	ps := out.RouteParents["HTTPRoute/shop/shop"]
	if len(ps) != 1 || cond(t, ps[0].Conditions, "Accepted").Status != metav1.ConditionTrue {
		t.Fatalf("route parents = %+v", ps)
	}
	if c := cond(t, ps[0].Conditions, "ResolvedRefs"); c.Status != metav1.ConditionFalse || c.Reason != "RefNotPermitted" {
		t.Errorf("cross-namespace backend without a ReferenceGrant: ResolvedRefs = %+v", c)
	}
	if len(out.Gateways) != 1 || out.Gateways[0].Name != "web~http" || out.Gateways[0].Spec.Selector[LabelGatewayName] != "web" {
		t.Fatalf("generated gateways = %+v", out.Gateways)
	}
	if len(out.VirtualServices) != 1 {
		t.Fatalf("generated virtual services = %+v", out.VirtualServices)
	}
	vs := out.VirtualServices[0]
	if vs.Spec.Hosts[0] != "shop.example.com" || vs.Spec.Gateways[0] != "infra/web~http" {
		t.Errorf("virtual service hosts %v gateways %v", vs.Spec.Hosts, vs.Spec.Gateways)
	}
	// /cart becomes exact /cart and prefix /cart/, before the catch-all,
	// which answers 500 (its only backend is not permitted).
	if len(vs.Spec.Http) != 3 || vs.Spec.Http[0].Match[0].Uri.GetExact() != "/cart" || vs.Spec.Http[1].Match[0].Uri.GetPrefix() != "/cart/" ||
		vs.Spec.Http[2].DirectResponse.GetStatus() != 500 {
		t.Errorf("routes = %v", vs.Spec.Http)
	}
	if d := vs.Spec.Http[0].Route[0].Destination; d.Host != "cart.shop.svc.cluster.local" || d.Port.Number != 8080 {
		t.Errorf("destination = %v", d)
	}

	in := world()
	in.Grants = []*gwv1.ReferenceGrant{{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "catalog"},
		Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: "shop"}},
			To:   []gwv1.ReferenceGrantTo{{Kind: "Service"}},
		}}}
	out = Translate(in)
	if c := cond(t, out.RouteParents["HTTPRoute/shop/shop"][0].Conditions, "ResolvedRefs"); c.Status != metav1.ConditionTrue {
		t.Errorf("with a ReferenceGrant: ResolvedRefs = %+v", c)
	}
	if d := out.VirtualServices[0].Spec.Http[2].Route[0].Destination; d.Host != "catalog.catalog.svc.cluster.local" {
		t.Errorf("granted backend destination = %v", d)
	}
}

func TestIntersect(t *testing.T) {
	for _, tc := range []struct {
		route    []gwv1.Hostname
		listener string
		want     []string
	}{
		{nil, "", []string{"*"}},
		{nil, "*.example.com", []string{"*.example.com"}},
		{[]gwv1.Hostname{"a.example.com"}, "*.example.com", []string{"a.example.com"}},
		{[]gwv1.Hostname{"*.example.com"}, "a.example.com", []string{"a.example.com"}},
		{[]gwv1.Hostname{"a.other.com"}, "*.example.com", nil},
		{[]gwv1.Hostname{"example.com"}, "*.example.com", nil},
	} {
		var l *gwv1.Hostname
		if tc.listener != "" {
			l = ptr(gwv1.Hostname(tc.listener))
		}
		got := intersect(tc.route, l)
		if len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] {
			t.Errorf("intersect(%v, %q) = %v, want %v", tc.route, tc.listener, got, tc.want)
		}
	}
}

// A route whose hostnames a listener does not serve is not Accepted there
// and not counted in its attachedRoutes (the suite's
// GatewayWithAttachedRoutes and HTTPRouteHostnameIntersection).
func TestAttachedRoutesCountsAcceptedOnly(t *testing.T) {
	in := world()
	in.Gateways[0].Spec.Listeners[0].Hostname = ptr(gwv1.Hostname("shop.example.com"))
	other := in.HTTPRoutes[0].DeepCopy()
	other.Name, other.Spec.Hostnames = "elsewhere", []gwv1.Hostname{"other.example.com"}
	in.HTTPRoutes = append(in.HTTPRoutes, other)
	out := Translate(in)
	if got := out.GatewayStatus["infra/web"].Listeners[0].AttachedRoutes; got != 1 {
		t.Errorf("attachedRoutes = %d, want 1 (the route for other.example.com is not attached)", got)
	}
	ps := out.RouteParents["HTTPRoute/shop/elsewhere"]
	if len(ps) != 1 || cond(t, ps[0].Conditions, "Accepted").Reason != "NoMatchingListenerHostname" {
		t.Errorf("route parents = %+v", ps)
	}
}

func selfSignedPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.org"}, DNSNames: []string{"*.org"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// An HTTPS listener's certificateRef must name a Secret pilot reads that
// holds a usable key pair; otherwise the listener is ResolvedRefs=False
// InvalidCertificateRef and not programmed, but routes still attach and
// count (the suite's GatewayInvalidTLSConfiguration and
// GatewayWithAttachedRoutes). Another namespace's Secret, granted, becomes
// a cross-namespace credential name.
func TestListenerCertificateRefs(t *testing.T) {
	certPEM, keyPEM := selfSignedPEM(t)
	tlsSecret := func(ns, name string, crt, key []byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	}
	secrets := []*corev1.Secret{
		tlsSecret("infra", "good", certPEM, keyPEM),
		tlsSecret("infra", "malformed", []byte("Hello world\n"), []byte("Hello world\n")),
		tlsSecret("certs", "shared", certPEM, keyPEM),
	}
	for _, tc := range []struct {
		name       string
		ref        gwv1.SecretObjectReference
		read       func(string) error
		grant      bool
		wantReason string // "" resolved
		wantCred   string
	}{
		{name: "present", ref: gwv1.SecretObjectReference{Name: "good"}, wantCred: "good"},
		{name: "missing", ref: gwv1.SecretObjectReference{Name: "nonexistent"}, wantReason: "InvalidCertificateRef"},
		{name: "malformed", ref: gwv1.SecretObjectReference{Name: "malformed"}, wantReason: "InvalidCertificateRef"},
		{name: "wrong kind", ref: gwv1.SecretObjectReference{Name: "good", Kind: ptr(gwv1.Kind("WrongKind"))}, wantReason: "InvalidCertificateRef"},
		{name: "namespace not read", ref: gwv1.SecretObjectReference{Name: "good"}, read: func(ns string) error { return &credential.NotReadError{Namespace: ns} }, wantReason: "InvalidCertificateRef"},
		{name: "other namespace, no grant", ref: gwv1.SecretObjectReference{Name: "shared", Namespace: ptr(gwv1.Namespace("certs"))}, wantReason: "RefNotPermitted"},
		{name: "other namespace, granted", ref: gwv1.SecretObjectReference{Name: "shared", Namespace: ptr(gwv1.Namespace("certs"))}, grant: true,
			wantCred: "kubernetes-gateway://certs/shared"},
		{name: "other namespace, granted, missing", ref: gwv1.SecretObjectReference{Name: "gone", Namespace: ptr(gwv1.Namespace("certs"))}, grant: true,
			wantReason: "InvalidCertificateRef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := world()
			in.Gateways[0].Spec.Listeners[1] = gwv1.Listener{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType,
				AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}},
				TLS:           &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{tc.ref}}}
			in.Secrets, in.SecretsRead = secrets, tc.read
			if in.SecretsRead == nil {
				in.SecretsRead = func(string) error { return nil }
			}
			if tc.grant {
				in.Grants = []*gwv1.ReferenceGrant{{ObjectMeta: metav1.ObjectMeta{Name: "certs", Namespace: "certs"},
					Spec: gwv1.ReferenceGrantSpec{
						From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "Gateway", Namespace: "infra"}},
						To:   []gwv1.ReferenceGrantTo{{Kind: "Secret"}},
					}}}
			}
			out := Translate(in)
			ls := out.GatewayStatus["infra/web"].Listeners[1]
			resolved := cond(t, ls.Conditions, "ResolvedRefs")
			// Where pilot must read Secrets for it, and who asks: the
			// Gateway for its own namespace, the grant for another's.
			if tc.wantReason != "RefNotPermitted" && tc.wantReason != "" || tc.wantCred != "" {
				secretNS, why := "infra", "Gateway infra/web"
				if tc.grant {
					secretNS, why = "certs", "ReferenceGrant certs/certs"
				}
				u := out.SecretUses[secretNS]
				if tc.ref.Kind != nil {
					u, secretNS = out.SecretUses["infra"], ""
				}
				switch {
				case secretNS == "" && u != nil:
					t.Errorf("a ref that is no Secret makes pilot read Secrets in infra: %+v", u)
				case secretNS != "" && (u == nil || tc.grant && (len(u.Grants) != 1 || len(u.Gateways) != 0) || !tc.grant && (len(u.Gateways) != 1 || len(u.Grants) != 0)):
					t.Errorf("SecretUses[%s] = %+v, want %s alone", secretNS, u, why)
				}
			}
			if tc.wantReason == "RefNotPermitted" && out.SecretUses["certs"] != nil {
				t.Errorf("a ref no ReferenceGrant allows makes pilot read Secrets in certs: %+v", out.SecretUses["certs"])
			}
			if tc.wantReason == "" {
				if resolved.Status != metav1.ConditionTrue {
					t.Fatalf("ResolvedRefs = %+v, want True", resolved)
				}
				var cred string
				for _, g := range out.Gateways {
					if g.Name == "web~https" {
						cred = g.Spec.Servers[0].GetTls().GetCredentialName()
					}
				}
				if cred != tc.wantCred {
					t.Errorf("credentialName = %q, want %q", cred, tc.wantCred)
				}
				return
			}
			if resolved.Status != metav1.ConditionFalse || resolved.Reason != tc.wantReason {
				t.Errorf("ResolvedRefs = %+v, want False/%s", resolved, tc.wantReason)
			}
			if p := cond(t, ls.Conditions, "Programmed"); p.Status != metav1.ConditionFalse {
				t.Errorf("Programmed = %+v, want False", p)
			}
			for _, g := range out.Gateways {
				if g.Name == "web~https" {
					t.Errorf("a listener whose certificate does not resolve was generated: %v", g.Spec.Servers)
				}
			}
			// The shop route attaches to every listener (no sectionName):
			// the unresolved one counts it too.
			if tc.wantReason == "InvalidCertificateRef" && ls.AttachedRoutes != 1 {
				t.Errorf("attachedRoutes = %d, want 1", ls.AttachedRoutes)
			}
		})
	}
}

// A Gateway whose only listener has an unresolved certificateRef is not
// Accepted, yet routes attach to the listener and count in its
// attachedRoutes (the suite's GatewayWithAttachedRoutes); a Gateway with an
// infrastructure parametersRef, which mesh does not read, is refused
// (InvalidParameters) and takes no routes.
func TestRoutesAttachToUnresolvedListeners(t *testing.T) {
	in := world()
	in.Gateways[0].Spec.Listeners = []gwv1.Listener{{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType,
		AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}},
		TLS:           &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "does-not-exist"}}}}}
	in.SecretsRead = func(string) error { return nil }
	out := Translate(in)
	gs := out.GatewayStatus["infra/web"]
	if c := cond(t, gs.Conditions, "Accepted"); c.Status != metav1.ConditionFalse || c.Reason != "ListenersNotValid" {
		t.Errorf("gateway Accepted = %+v", c)
	}
	if got := gs.Listeners[0].AttachedRoutes; got != 1 {
		t.Errorf("attachedRoutes = %d, want 1", got)
	}
	if len(out.Gateways) != 0 || len(out.Deployments) != 0 {
		t.Errorf("an unprogrammed listener was generated (%d gateways) or deployed (%d)", len(out.Gateways), len(out.Deployments))
	}

	in = world()
	in.Gateways[0].Spec.Infrastructure = &gwv1.GatewayInfrastructure{ParametersRef: &gwv1.LocalParametersReference{Kind: "ConfigMap", Name: "params"}}
	out = Translate(in)
	gs = out.GatewayStatus["infra/web"]
	if c := cond(t, gs.Conditions, "Accepted"); c.Status != metav1.ConditionFalse || c.Reason != "InvalidParameters" {
		t.Errorf("gateway with a parametersRef: Accepted = %+v", c)
	}
	if got := gs.Listeners[0].AttachedRoutes; got != 0 || len(out.Deployments) != 0 || len(out.Gateways) != 0 {
		t.Errorf("a refused Gateway took routes (%d), a deployment (%d) or generated gateways (%d)", got, len(out.Deployments), len(out.Gateways))
	}
}

// TestListenerIsolation: the listeners of one port share its route table,
// so each listener's routes leave out the hostnames a more specific
// listener of the port serves, and a more specific listener no route
// names a host for gets one answering 404 (GatewayHTTPListenerIsolation).
func TestListenerIsolation(t *testing.T) {
	in := world()
	all := &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}}
	in.Gateways[0].Spec.Listeners = []gwv1.Listener{
		{Name: "any", Port: 80, Protocol: gwv1.HTTPProtocolType, AllowedRoutes: all},
		{Name: "wild", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: ptr(gwv1.Hostname("*.example.com")), AllowedRoutes: all},
		{Name: "abc", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: ptr(gwv1.Hostname("abc.foo.example.com")), AllowedRoutes: all},
		{Name: "other-port", Port: 8080, Protocol: gwv1.HTTPProtocolType, AllowedRoutes: all},
	}
	route := func(name, section string, hosts ...gwv1.Hostname) *gwv1.HTTPRoute {
		r := in.HTTPRoutes[0].DeepCopy()
		r.Name, r.Spec.Hostnames = name, hosts
		r.Spec.ParentRefs = []gwv1.ParentReference{{Name: "web", Namespace: ptr(gwv1.Namespace("infra")), SectionName: ptr(gwv1.SectionName(section))}}
		return r
	}
	in.HTTPRoutes = []*gwv1.HTTPRoute{
		route("to-any", "any", "bar.com", "*.example.com", "abc.foo.example.com", "*.foo.example.com"),
		route("to-wild", "wild"),
		route("to-other-port", "other-port", "*.example.com"),
	}
	out := Translate(in)
	got := map[string][]string{}
	notFound := map[string]bool{}
	for _, vs := range out.VirtualServices {
		got[vs.Spec.Gateways[0]] = append(got[vs.Spec.Gateways[0]], vs.Spec.Hosts...)
		if len(vs.Spec.Http) == 1 && vs.Spec.Http[0].DirectResponse.GetStatus() == 404 && len(vs.Spec.Http[0].Match) == 0 {
			notFound[vs.Spec.Hosts[0]] = true
		}
	}
	want := map[string][]string{
		"infra/web~any":        {"bar.com"},             // the rest belong to wild and abc
		"infra/web~wild":       {"*.example.com"},       // the route's own hosts
		"infra/web~abc":        {"abc.foo.example.com"}, // no route: 404 of its own
		"infra/web~other-port": {"*.example.com"},       // another port: not isolated
	}
	for gw, hosts := range want {
		if fmt.Sprint(got[gw]) != fmt.Sprint(hosts) {
			t.Errorf("%s serves hosts %v, want %v", gw, got[gw], hosts)
		}
	}
	if !notFound["abc.foo.example.com"] || len(notFound) != 1 {
		t.Errorf("404 hosts = %v, want abc.foo.example.com only", notFound)
	}
	// Isolation changes what requests match, not where routes attach.
	for _, l := range out.GatewayStatus["infra/web"].Listeners {
		if want := map[string]int32{"any": 1, "wild": 1, "abc": 0, "other-port": 1}[string(l.Name)]; l.AttachedRoutes != want {
			t.Errorf("listener %s attachedRoutes = %d, want %d", l.Name, l.AttachedRoutes, want)
		}
	}
}
