package fallback

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func policy(t *testing.T, doc string) unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return unstructured.Unstructured{Object: m}
}

// TestVeto walks the veto's rules for a pod app=cart in namespace shop
// (root mesh-system): what forbids its fallback and what does not.
func TestVeto(t *testing.T) {
	cases := []struct {
		name string
		p    func(t *testing.T) Policies
		want string // "" for no veto
	}{
		{"nothing", func(*testing.T) Policies { return Policies{} }, ""},
		{"PERMISSIVE", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: p, namespace: shop}\nspec: {mtls: {mode: PERMISSIVE}}")}}
		}, ""},
		{"STRICT elsewhere: a destination, no veto", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: s, namespace: bank}\nspec: {mtls: {mode: STRICT}}")}}
		}, ""},
		{"STRICT in the namespace", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: s, namespace: shop}\nspec: {mtls: {mode: STRICT}}")}}
		}, "PeerAuthentication shop/s is STRICT"},
		{"STRICT mesh-wide", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: s, namespace: mesh-system}\nspec: {mtls: {mode: STRICT}}")}}
		}, "PeerAuthentication mesh-system/s is STRICT"},
		{"STRICT selecting the pod", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: s, namespace: shop}\nspec: {selector: {matchLabels: {app: cart}}, mtls: {mode: STRICT}}")}}
		}, "PeerAuthentication shop/s is STRICT"},
		{"STRICT selecting another workload", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: s, namespace: shop}\nspec: {selector: {matchLabels: {app: ledger}}, mtls: {mode: STRICT}}")}}
		}, ""},
		{"STRICT on one port", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: s, namespace: shop}\nspec: {portLevelMtls: {'8080': {mode: STRICT}}}")}}
		}, "PeerAuthentication shop/s is STRICT"},
		{"ISTIO_MUTUAL in a subset of a Service: a destination, no veto", func(t *testing.T) Policies {
			return Policies{DestinationRules: []unstructured.Unstructured{policy(t, "metadata: {name: d, namespace: bank}\nspec: {host: ledger, subsets: [{name: v1, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]}")},
				Services: []corev1.Service{service("bank", "ledger", "10.96.0.9", map[string]string{"app": "ledger"})}}
		}, ""},
		{"ISTIO_MUTUAL for no Service", func(t *testing.T) Policies {
			return Policies{DestinationRules: []unstructured.Unstructured{policy(t, "metadata: {name: d, namespace: bank}\nspec: {host: ledger, subsets: [{name: v1, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]}")}}
		}, "DestinationRule bank/d requires ISTIO_MUTUAL for ledger.bank.svc.cluster.local, which is no Kubernetes Service the agent can map to addresses"},
		{"ISTIO_MUTUAL for every host", func(t *testing.T) Policies {
			return Policies{DestinationRules: []unstructured.Unstructured{policy(t, "metadata: {name: d, namespace: mesh-system}\nspec: {host: '*', trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}")}}
		}, `DestinationRule mesh-system/d requires ISTIO_MUTUAL for "*", which the agent cannot map to addresses`},
		{"SIMPLE TLS", func(t *testing.T) Policies {
			return Policies{DestinationRules: []unstructured.Unstructured{policy(t, "metadata: {name: d, namespace: bank}\nspec: {host: api.example.com, trafficPolicy: {tls: {mode: SIMPLE}}}")}}
		}, ""},
		{"policy selecting another workload", func(t *testing.T) Policies {
			return Policies{AuthorizationPolicies: []unstructured.Unstructured{policy(t, "metadata: {name: a, namespace: shop}\nspec: {selector: {matchLabels: {app: ledger}}}")}}
		}, ""},
		{"policy selecting the pod", func(t *testing.T) Policies {
			return Policies{AuthorizationPolicies: []unstructured.Unstructured{policy(t, "metadata: {name: a, namespace: shop}\nspec: {selector: {matchLabels: {app: cart}}}")}}
		}, "AuthorizationPolicy shop/a selects the pod"},
		{"namespace-wide policy in another namespace", func(t *testing.T) Policies {
			return Policies{AuthorizationPolicies: []unstructured.Unstructured{policy(t, "metadata: {name: a, namespace: bank}\nspec: {action: DENY}")}}
		}, ""},
		{"mesh-wide policy in the root namespace", func(t *testing.T) Policies {
			return Policies{AuthorizationPolicies: []unstructured.Unstructured{policy(t, "metadata: {name: a, namespace: mesh-system}\nspec: {action: DENY}")}}
		}, "AuthorizationPolicy mesh-system/a selects the pod"},
		{"targetRefs", func(t *testing.T) Policies {
			return Policies{AuthorizationPolicies: []unstructured.Unstructured{policy(t, "metadata: {name: a, namespace: shop}\nspec: {targetRefs: [{kind: Service, name: ledger}]}")}}
		}, "AuthorizationPolicy shop/a selects the pod"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.p(t)
			got := strings.Join(p.Veto("mesh-system", "shop", map[string]string{"app": "cart"}), "; ")
			if got != c.want {
				t.Errorf("veto = %q, want %q", got, c.want)
			}
		})
	}
}

func service(ns, name, clusterIP string, sel map[string]string) corev1.Service {
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}, Selector: sel}}
}

func pod(ns, name, ip string, labels map[string]string) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}}
}

// TestDecideKeepsDestinations: the destinations that require mTLS stay
// captured while cart (shop, app=cart) is in fallback, and only they: the
// pods a STRICT policy covers and the Services selecting them, an
// ISTIO_MUTUAL rule's Service and its pods; not a PERMISSIVE workload's,
// not another namespace's pods of the same name, not a finished pod's.
func TestDecideKeepsDestinations(t *testing.T) {
	p := Policies{
		PeerAuthentications: []unstructured.Unstructured{
			policy(t, "metadata: {name: strict, namespace: bank}\nspec: {mtls: {mode: STRICT}}"),
			policy(t, "metadata: {name: vault, namespace: shop}\nspec: {selector: {matchLabels: {app: vault}}, portLevelMtls: {'8443': {mode: STRICT}}}"),
			policy(t, "metadata: {name: open, namespace: web}\nspec: {mtls: {mode: PERMISSIVE}}"),
		},
		DestinationRules: []unstructured.Unstructured{
			policy(t, "metadata: {name: reviews, namespace: web}\nspec: {host: reviews, trafficPolicy: {portLevelSettings: [{port: {number: 9080}, tls: {mode: ISTIO_MUTUAL}}]}}"),
			policy(t, "metadata: {name: ratings, namespace: web}\nspec: {host: ratings, trafficPolicy: {tls: {mode: DISABLE}}}"),
		},
		Services: []corev1.Service{
			service("bank", "ledger", "10.96.1.1", map[string]string{"app": "ledger"}),
			service("bank", "legacy", "10.96.1.2", nil), // no selector: its namespace is STRICT
			service("shop", "vault", "10.96.2.1", map[string]string{"app": "vault"}),
			service("shop", "cart", "10.96.2.2", map[string]string{"app": "cart"}),
			service("web", "reviews", "10.96.3.1", map[string]string{"app": "reviews"}),
			service("web", "ratings", "10.96.3.2", map[string]string{"app": "ratings"}),
			service("web", "vault", "10.96.3.3", map[string]string{"app": "vault"}),
		},
		Pods: []corev1.Pod{
			pod("bank", "ledger-1", "198.18.1.1", map[string]string{"app": "ledger"}),
			pod("shop", "vault-1", "198.18.2.1", map[string]string{"app": "vault"}),
			pod("shop", "cart-1", "198.18.2.2", map[string]string{"app": "cart"}),
			pod("web", "reviews-1", "198.18.3.1", map[string]string{"app": "reviews"}),
			pod("web", "ratings-1", "198.18.3.2", map[string]string{"app": "ratings"}),
			pod("web", "vault-1", "198.18.3.3", map[string]string{"app": "vault"}),
		},
	}
	done := pod("web", "reviews-0", "198.18.3.9", map[string]string{"app": "reviews"})
	done.Status.Phase = corev1.PodSucceeded
	p.Pods = append(p.Pods, done)
	d := p.Decide("mesh-system", "shop", map[string]string{"app": "cart"})
	if len(d.Veto) > 0 {
		t.Fatalf("vetoed: %v", d.Veto)
	}
	want := []string{"10.96.1.1", "10.96.1.2", "10.96.2.1", "10.96.3.1", "198.18.1.1", "198.18.2.1", "198.18.3.1"}
	if got := fmt.Sprint(d.Keep); got != fmt.Sprint(addrs(want)) {
		t.Errorf("kept %s, want %s", got, want)
	}
	wantKept := "DestinationRule web/reviews requires ISTIO_MUTUAL (reviews.web.svc.cluster.local); " +
		"PeerAuthentication bank/strict is STRICT (namespace bank); " +
		"PeerAuthentication shop/vault is STRICT (workloads app=vault of namespace shop)"
	if got := strings.Join(d.Kept, "; "); got != wantKept {
		t.Errorf("kept by %q, want %q", got, wantKept)
	}

	// An ISTIO_MUTUAL rule for cart's own Service vetoes cart.
	own := p
	own.DestinationRules = append(own.DestinationRules, policy(t, "metadata: {name: cart, namespace: shop}\nspec: {host: cart, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}"))
	if got := strings.Join(own.Veto("mesh-system", "shop", map[string]string{"app": "cart"}), "; "); got != "DestinationRule shop/cart requires ISTIO_MUTUAL for the pod's Service shop/cart" {
		t.Errorf("cart with an ISTIO_MUTUAL rule for its Service: veto %q", got)
	}

	// vault itself is STRICT on a port: it may not fall back, and a veto
	// keeps nothing (the whole pod stays captured).
	d = p.Decide("mesh-system", "shop", map[string]string{"app": "vault"})
	if got := strings.Join(d.Veto, "; "); got != "PeerAuthentication shop/vault is STRICT" || d.Keep != nil {
		t.Errorf("vault: veto %q keep %v", got, d.Keep)
	}
}

func addrs(ss []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}
