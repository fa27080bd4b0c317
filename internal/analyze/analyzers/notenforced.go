package analyzers

import (
	"fmt"
	"strings"

	securityapi "istio.io/api/security/v1beta1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	security "istio.io/client-go/pkg/apis/security/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/authz"
)

// NotEnforced reports Istio settings this mesh accepts but does not carry
// out (MSH0003), so nobody believes a JWT check or a CORS policy protects
// them when it does not: RequestAuthentication (mesh-proxy has no JWT
// filter), ALLOW rules with conditions pilot cannot translate (they allow
// nobody), VirtualService delegation and CORS policies.
type NotEnforced struct{}

// Metadata describes the analyzer.
func (*NotEnforced) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "mesh.NotEnforced", Description: "Checks for settings the mesh accepts but does not enforce",
		Codes: []*analyze.MessageType{analyze.NotEnforced}}
}

// Analyze runs the checks.
func (*NotEnforced) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("RequestAuthentication") {
		if _, ok := r.Object.(*security.RequestAuthentication); ok {
			ctx.Report(analyze.NotEnforced, r, "spec.jwtRules",
				"RequestAuthentication is not enforced: mesh-proxy has no JWT filter, so tokens are neither validated nor rejected; do not rely on it to keep requests out")
		}
	}
	for _, r := range ctx.ByKind("AuthorizationPolicy") {
		ap, ok := r.Object.(*security.AuthorizationPolicy)
		if !ok || ap.Spec.Action != securityapi.AuthorizationPolicy_ALLOW {
			continue
		}
		for i, rule := range ap.Spec.Rules {
			// http=true: on an HTTP port is where such a rule can apply at all.
			if parts := authz.TranslateRule(rule, ap.Namespace, true, false).Unenforced; len(parts) > 0 {
				ctx.Report(analyze.NotEnforced, r, fmt.Sprintf("spec.rules[%d]", i),
					"Rule %d uses %s, which the mesh cannot enforce, so the rule allows nobody (requests it was meant to admit are denied); express it with principals, serviceAccounts, namespaces, ipBlocks or request headers",
					i, strings.Join(parts, ", "))
			}
		}
	}
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok {
			continue
		}
		for i, hr := range vs.Spec.Http {
			if hr.Delegate != nil {
				ctx.Report(analyze.NotEnforced, r, fmt.Sprintf("spec.http[%d].delegate", i),
					"Delegation to VirtualService %s is not supported: the rule is skipped; put the delegate's routes in this VirtualService", hr.Delegate.Name)
			}
			if hr.CorsPolicy != nil {
				ctx.Report(analyze.NotEnforced, r, fmt.Sprintf("spec.http[%d].corsPolicy", i),
					"corsPolicy is not applied: preflight requests reach the application and no CORS headers are added; answer CORS in the application")
			}
		}
	}
}
