// Package authz translates Istio's AuthorizationPolicy rules into Envoy RBAC,
// failing closed on what the field table (internal/enforced) says the mesh
// does not carry out, so pilot and analyze agree.
package authz

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	securityapi "istio.io/api/security/v1beta1"

	"mesh.dev/mesh/internal/enforced"
)

// notEnforced returns the set fields of a rule the field table says the
// mesh does not carry out, or does not classify (fields a newer
// istio.io/api added), as "path (why)" relative to the rule.
func notEnforced(rule *securityapi.Rule) []enforced.Finding {
	out := enforced.Fields("AuthorizationPolicy", "spec.rules", "", rule.ProtoReflect())
	for i := range out {
		out[i].Path = strings.TrimPrefix(out[i].Path, ".")
	}
	return out
}

// Findings is what analyze (MSH0003) and pilot's status report for a spec of
// an accepted kind: the set fields the field table says are not carried
// out, and for AuthorizationPolicy what each rule's translation could not
// carry out (malformed values, HTTP-only parts on TCP ports included), with
// what that does to the rule.
func Findings(kind string, spec proto.Message) []enforced.Finding {
	all := enforced.Unenforced(kind, spec)
	ap, ok := spec.(*securityapi.AuthorizationPolicy)
	if !ok {
		return all
	}
	var out []enforced.Finding
	for _, f := range all {
		if !strings.HasPrefix(f.Path, "spec.rules[") {
			out = append(out, f)
		}
	}
	deny := ap.GetAction() != securityapi.AuthorizationPolicy_ALLOW
	then := ": the rule allows nobody"
	if deny {
		then = ": the part is dropped, so the rule denies more"
	}
	for i, r := range ap.GetRules() {
		// On an HTTP port, where every part can apply; on TCP ports the
		// HTTP-only parts fail the same way.
		for _, f := range TranslateRule(r, "policy-namespace", true, deny).Unenforced {
			out = append(out, enforced.Finding{Path: fmt.Sprintf("spec.rules[%d].%s", i, f.Path), Note: f.Note + then})
		}
	}
	return out
}
