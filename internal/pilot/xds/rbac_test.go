package xds

import (
	"sort"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	securityapi "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
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

// Conditions pilot cannot translate (Envoy filter metadata, attributes the
// mesh does not know) must never widen what a policy allows.
func TestAuthorizationRulesPilotCannotTranslateFailClosed(t *testing.T) {
	fromShop := []*securityapi.Rule_From{{Source: &securityapi.Source{Namespaces: []string{"shop"}}}}
	claims := &securityapi.Rule{From: fromShop, When: []*securityapi.Condition{{Key: "experimental.envoy.filters.x[groups]", Values: []string{"admin"}}}}
	jwt := &securityapi.Rule{From: []*securityapi.Rule_From{{Source: &securityapi.Source{Namespaces: []string{"shop"}}}},
		When: []*securityapi.Condition{{Key: "destination.name", Values: []string{"cart"}}}}
	known := &securityapi.Rule{From: fromShop, When: []*securityapi.Condition{{Key: "source.namespace", Values: []string{"shop"}}}}

	allow := buildRBAC([]*securityv1.AuthorizationPolicy{
		policy("admins", claims), policy("jwt", jwt), policy("same-ns", known),
	}, rbacv3.RBAC_ALLOW, true)
	// Dropped whole, the two rules allow nobody; without this they would
	// have allowed all of shop.
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

// targetRefs to a Gateway select that Gateway's pods only; a Service
// target is for waypoints and selects no sidecar. Before, a policy with
// targetRefs and no selector applied to every workload of its namespace.
func TestPolicyTargetRefs(t *testing.T) {
	gw := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "shop"}}
	gw.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Group: "gateway.networking.k8s.io", Kind: "Gateway", Name: "front"}}
	svc := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "shop"}}
	svc.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Kind: "Service", Name: "cart"}}
	front := map[string]string{gatewayNameLabel: "front"}
	cart := map[string]string{"app": "cart"}
	for _, c := range []struct {
		ap   *securityv1.AuthorizationPolicy
		ns   string
		lbls map[string]string
		want bool
	}{
		{gw, "shop", front, true}, {gw, "shop", cart, false}, {gw, "other", front, false},
		{svc, "shop", cart, false}, {svc, "shop", front, false},
	} {
		if got := policyApplies(c.ap, c.ns, "mesh-system", c.lbls); got != c.want {
			t.Errorf("policy %s on %s/%v: applies %v, want %v", c.ap.Name, c.ns, c.lbls, got, c.want)
		}
	}
}

// CUSTOM policies are kept apart (checked by ext_authz on HTTP ports,
// denied on TCP ones), and so are AUDIT ones (they change no decision: an
// RBAC filter with action LOG, ahead of DENY and ALLOW, marks what they
// match for the access log).
func TestCustomApartAuditDecidesNothing(t *testing.T) {
	custom := policy("ext", &securityapi.Rule{})
	custom.Spec.Action = securityapi.AuthorizationPolicy_CUSTOM
	audit := policy("audit", &securityapi.Rule{})
	audit.Spec.Action = securityapi.AuthorizationPolicy_AUDIT
	deny := policy("deny", &securityapi.Rule{})
	deny.Spec.Action = securityapi.AuthorizationPolicy_DENY
	pc := &PushContext{Snap: &model.Snapshot{RootNamespace: "mesh-system",
		AuthorizationPolicies: []*securityv1.AuthorizationPolicy{custom, audit, deny}}}
	as := pc.authzPolicies("shop", map[string]string{"app": "cart"})
	if len(as.allow) != 0 || len(as.deny) != 1 || len(as.custom) != 1 || as.custom[0].Name != "ext" || len(as.audit) != 1 || as.audit[0].Name != "audit" {
		t.Errorf("allow %d, deny %d, custom %v, audit %v; want each policy under its action", len(as.allow), len(as.deny), as.custom, as.audit)
	}
	hf := httpRBACFilters(as)
	if len(hf) != 2 {
		t.Fatalf("%d HTTP RBAC filters, want AUDIT's and DENY's", len(hf))
	}
	for i, want := range []rbacv3.RBAC_Action{rbacv3.RBAC_LOG, rbacv3.RBAC_DENY} {
		r := &rbachttp.RBAC{}
		if err := hf[i].GetTypedConfig().UnmarshalTo(r); err != nil {
			t.Fatal(err)
		}
		if r.GetRules().GetAction() != want || len(r.GetRules().GetPolicies()) != 1 {
			t.Errorf("filter %d: action %v with %d policies, want %v with 1", i, r.GetRules().GetAction(), len(r.GetRules().GetPolicies()), want)
		}
	}
	nf := networkRBACFilters("inbound|9080||", as)
	r := &rbacnet.RBAC{}
	if len(nf) != 2 || nf[0].GetTypedConfig().UnmarshalTo(r) != nil || r.GetRules().GetAction() != rbacv3.RBAC_LOG {
		t.Errorf("network RBAC filters %v: want AUDIT's (LOG) first, then DENY's", nf)
	}
}
