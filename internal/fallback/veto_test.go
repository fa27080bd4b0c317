package fallback

import (
	"strings"
	"testing"

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
		{"STRICT elsewhere", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: s, namespace: bank}\nspec: {mtls: {mode: STRICT}}")}}
		}, "PeerAuthentication bank/s is STRICT"},
		{"STRICT on one port", func(t *testing.T) Policies {
			return Policies{PeerAuthentications: []unstructured.Unstructured{policy(t, "metadata: {name: s, namespace: shop}\nspec: {portLevelMtls: {'8080': {mode: STRICT}}}")}}
		}, "PeerAuthentication shop/s is STRICT"},
		{"ISTIO_MUTUAL in a subset", func(t *testing.T) Policies {
			return Policies{DestinationRules: []unstructured.Unstructured{policy(t, "metadata: {name: d, namespace: bank}\nspec: {host: ledger, subsets: [{name: v1, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]}")}}
		}, "DestinationRule bank/d requires ISTIO_MUTUAL"},
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
