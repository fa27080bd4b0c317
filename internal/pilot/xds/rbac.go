package xds

import (
	"strconv"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/labels"

	"mesh.dev/mesh/internal/authz"
)

// gatewayNameLabel is the label Gateway API implementations put on the pods
// of a Gateway; a policy's targetRefs to a Gateway selects them.
const gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"

// authzSet is the policies that apply to one workload, by action.
type authzSet struct {
	allow []*securityv1.AuthorizationPolicy
	// deny holds DENY policies and those of actions this build does not
	// know: refusing what they match errs the safe way.
	deny []*securityv1.AuthorizationPolicy
	// custom is checked by an ext_authz provider on HTTP ports, denied on TCP ones.
	custom []*securityv1.AuthorizationPolicy
	// audit changes no decision: an RBAC filter with action LOG marks what
	// it matches for the access log (access_log_hint), as istiod writes it.
	audit []*securityv1.AuthorizationPolicy
}

// authzPolicies returns the policies that apply to a workload by action.
func (pc *PushContext) authzPolicies(ns string, lbls map[string]string) authzSet {
	var as authzSet
	for _, ap := range pc.Snap.AuthorizationPolicies {
		if !policyApplies(ap, ns, pc.Snap.RootNamespace, lbls) {
			continue
		}
		switch ap.Spec.Action {
		case securityapi.AuthorizationPolicy_ALLOW:
			as.allow = append(as.allow, ap)
		case securityapi.AuthorizationPolicy_CUSTOM:
			as.custom = append(as.custom, ap)
		case securityapi.AuthorizationPolicy_AUDIT:
			as.audit = append(as.audit, ap)
		default:
			as.deny = append(as.deny, ap)
		}
	}
	return as
}

// policyApplies says whether a policy selects a workload of namespace ns.
// With targetRefs (or the older targetRef) only kind Gateway reaches
// sidecar-mode workloads: the pods of that Gateway in the policy's
// namespace. Service and ServiceEntry targets are for waypoints, which this
// mesh does not run, as Istio's sidecars ignore them too.
func policyApplies(ap *securityv1.AuthorizationPolicy, ns, root string, lbls map[string]string) bool {
	if ap.Namespace != ns && ap.Namespace != root {
		return false
	}
	refs := ap.Spec.GetTargetRefs()
	if r := ap.Spec.GetTargetRef(); r != nil {
		refs = append(refs[:len(refs):len(refs)], r)
	}
	if len(refs) > 0 {
		for _, r := range refs {
			if r.GetKind() == "Gateway" && r.GetGroup() == "gateway.networking.k8s.io" &&
				(r.GetNamespace() == "" || r.GetNamespace() == ap.Namespace) &&
				ap.Namespace == ns && r.GetName() != "" && lbls[gatewayNameLabel] == r.GetName() {
				return true
			}
		}
		return false
	}
	if sel := ap.Spec.Selector; sel != nil && len(sel.MatchLabels) > 0 &&
		!labels.SelectorFromSet(sel.MatchLabels).Matches(labels.Set(lbls)) {
		return false
	}
	return true
}

// buildRBAC translates policies of one action into Envoy RBAC, rule by rule
// with authz.TranslateRule: an ALLOW rule pilot cannot carry out whole
// allows nobody, a DENY rule denies more than written, never less, a LOG
// (AUDIT) rule logs more.
func buildRBAC(policies []*securityv1.AuthorizationPolicy, action rbacv3.RBAC_Action, http bool) *rbacv3.RBAC {
	return buildRBACPrefixed(policies, action, http, "")
}

// buildRBACPrefixed is buildRBAC with the policy names prefixed (CUSTOM's
// shadow rules are named istio-ext-authz-...).
func buildRBACPrefixed(policies []*securityv1.AuthorizationPolicy, action rbacv3.RBAC_Action, http bool, prefix string) *rbacv3.RBAC {
	r := &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
	for _, ap := range policies {
		for i, rule := range ap.Spec.Rules {
			// AUDIT (LOG) rules translate as DENY ones: a part that cannot
			// be carried out is dropped, so they log more, never less.
			tr := authz.TranslateRule(rule, ap.Namespace, http, action != rbacv3.RBAC_ALLOW)
			if tr.Permission == nil {
				continue
			}
			r.Policies[prefix+"ns["+ap.Namespace+"]-policy["+ap.Name+"]-rule["+strconv.Itoa(i)+"]"] = &rbacv3.Policy{
				Permissions: []*rbacv3.Permission{tr.Permission},
				Principals:  []*rbacv3.Principal{tr.Principal},
			}
		}
	}
	return r
}

// requestAuthns returns the RequestAuthentications that apply to a workload,
// selected as AuthorizationPolicies are.
func (pc *PushContext) requestAuthns(ns string, lbls map[string]string) []*securityv1.RequestAuthentication {
	var out []*securityv1.RequestAuthentication
	for _, ra := range pc.Snap.RequestAuthentications {
		probe := &securityv1.AuthorizationPolicy{}
		probe.Namespace = ra.Namespace
		probe.Spec.Selector = ra.Spec.Selector
		probe.Spec.TargetRef = ra.Spec.TargetRef
		probe.Spec.TargetRefs = ra.Spec.TargetRefs
		if policyApplies(probe, ns, pc.Snap.RootNamespace, lbls) {
			out = append(out, ra)
		}
	}
	return out
}
