package xds

import (
	"sort"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	securityapi "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/authz"
)

func policy(name string, rule *securityapi.Rule) *securityv1.AuthorizationPolicy {
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}}
	ap.Spec.Rules = []*securityapi.Rule{rule}
	ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "cart"}}
	return ap
}

func policyNames(r *rbacv3.RBAC) []string {
	var out []string
	for n := range r.Policies {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Conditions pilot cannot translate (JWT claims and request principals:
// mesh-proxy has no JWT filter) must never widen what a policy allows.
func TestAuthorizationRulesPilotCannotTranslateFailClosed(t *testing.T) {
	fromShop := []*securityapi.Rule_From{{Source: &securityapi.Source{Namespaces: []string{"shop"}}}}
	claims := &securityapi.Rule{From: fromShop, When: []*securityapi.Condition{{Key: "request.auth.claims[groups]", Values: []string{"admin"}}}}
	jwt := &securityapi.Rule{From: []*securityapi.Rule_From{{Source: &securityapi.Source{RequestPrincipals: []string{"issuer.example/*"}}}}}
	known := &securityapi.Rule{From: fromShop, When: []*securityapi.Condition{{Key: "source.namespace", Values: []string{"shop"}}}}

	allow := buildRBAC([]*securityv1.AuthorizationPolicy{
		policy("admins", claims), policy("jwt", jwt), policy("same-ns", known),
	}, rbacv3.RBAC_ALLOW, true)
	// Dropped whole, the claims and JWT rules allow nobody; without this they
	// would have allowed all of shop and everyone.
	if got := policyNames(allow); len(got) != 1 || got[0] != "ns[shop]-policy[same-ns]-rule[0]" {
		t.Errorf("ALLOW policies %v, want only the rule pilot can translate", got)
	}

	deny := buildRBAC([]*securityv1.AuthorizationPolicy{policy("admins", claims)}, rbacv3.RBAC_DENY, true)
	// A DENY rule keeps what pilot understands, so it denies all of shop:
	// more than written, never less.
	if got := policyNames(deny); len(got) != 1 {
		t.Errorf("DENY policies %v, want the rule kept", got)
	}
}

// What analyze reports as unenforced (authz.KnownCondition) is exactly what
// pilot has no Envoy form for.
func TestKnownConditionsAreTheTranslatedOnes(t *testing.T) {
	keys := []string{"source.ip", "source.namespace", "source.principal", "request.headers[x-user]",
		"request.auth.claims[groups]", "request.auth.principal", "destination.port", "connection.sni", "source.remoteIp", "experimental.envoy.filters.x"}
	for _, http := range []bool{true, false} {
		for _, k := range keys {
			translated := conditionPrincipal(&securityapi.Condition{Key: k, Values: []string{"v"}}, http) != nil
			if translated != authz.KnownCondition(k, http) {
				t.Errorf("key %s (http=%v): pilot translates it: %v, authz.KnownCondition says %v", k, http, translated, !translated)
			}
		}
	}
}
