// Package authz says which parts of Istio's AuthorizationPolicy rules this
// mesh enforces, so pilot (which must not widen an ALLOW it cannot fully
// translate) and analyze (which tells the user) agree.
package authz

import (
	"strings"

	securityapi "istio.io/api/security/v1beta1"
)

// Unsupported names the parts of rule mesh-proxy cannot enforce: request
// principals and request.auth claims need a JWT filter it does not have;
// remote IP blocks and `when` keys other than source.ip, source.namespace,
// source.principal and (on HTTP ports) request.headers[...] are not
// translated. http says whether the rule guards an HTTP port.
func Unsupported(rule *securityapi.Rule, http bool) []string {
	var out []string
	for _, from := range rule.GetFrom() {
		src := from.GetSource()
		if len(src.GetRequestPrincipals())+len(src.GetNotRequestPrincipals()) > 0 {
			out = append(out, "source.requestPrincipals")
		}
		if len(src.GetRemoteIpBlocks())+len(src.GetNotRemoteIpBlocks()) > 0 {
			out = append(out, "source.remoteIpBlocks")
		}
	}
	for _, cond := range rule.GetWhen() {
		if len(cond.Values)+len(cond.NotValues) > 0 && !KnownCondition(cond.Key, http) {
			out = append(out, "when "+cond.Key)
		}
	}
	return out
}

// KnownCondition reports whether a `when` key is one mesh enforces.
func KnownCondition(key string, http bool) bool {
	switch key {
	case "source.ip", "source.namespace", "source.principal":
		return true
	}
	return http && strings.HasPrefix(key, "request.headers[") && strings.HasSuffix(key, "]")
}
