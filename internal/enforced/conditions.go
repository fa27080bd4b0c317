package enforced

import "strings"

// CondInfo says whether mesh enforces a `when` key.
type CondInfo struct {
	Enforced bool
	HTTPOnly bool   // the attribute exists only on HTTP ports
	Why      string // for a key not enforced: the reason, for the user
}

// Condition classifies a `when` key (Istio's attribute names,
// https://istio.io/latest/docs/reference/config/security/conditions/).
func Condition(key string) CondInfo {
	switch key {
	case "source.ip", "remote.ip", "source.namespace", "source.principal", "source.serviceAccount",
		"destination.ip", "destination.port", "connection.sni":
		return CondInfo{Enforced: true}
	case "request.auth.principal", "request.auth.audiences", "request.auth.presenter":
		return CondInfo{Enforced: true, HTTPOnly: true}
	}
	if _, ok := HeaderConditionName(key); ok {
		return CondInfo{Enforced: true, HTTPOnly: true}
	}
	if _, ok := ClaimPath(key); ok {
		return CondInfo{Enforced: true, HTTPOnly: true}
	}
	if strings.HasPrefix(key, "request.auth.claims") {
		return CondInfo{HTTPOnly: true, Why: "is not a claim path: write request.auth.claims[name] or request.auth.claims[a][b]"}
	}
	if strings.HasPrefix(key, "experimental.envoy.filters.") {
		return CondInfo{Why: "Envoy filter metadata is not available in mesh-proxy"}
	}
	return CondInfo{Why: "not an attribute this mesh knows"}
}

// HeaderConditionName returns the header of a request.headers[name] key.
func HeaderConditionName(key string) (string, bool) {
	if !strings.HasPrefix(key, "request.headers[") || !strings.HasSuffix(key, "]") {
		return "", false
	}
	name := strings.TrimSuffix(strings.TrimPrefix(key, "request.headers["), "]")
	if name == "" {
		return "", false
	}
	// An HTTP token; pseudo-headers other than these have no request value.
	switch name {
	case ":method", ":path", ":authority", ":scheme":
		return name, true
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return "", false
		}
	}
	return name, true
}

// ClaimPath returns the claim names of a request.auth.claims[a][b] key.
func ClaimPath(key string) ([]string, bool) {
	rest, ok := strings.CutPrefix(key, "request.auth.claims")
	if !ok || rest == "" {
		return nil, false
	}
	var out []string
	for rest != "" {
		if rest[0] != '[' {
			return nil, false
		}
		i := strings.IndexByte(rest, ']')
		if i <= 1 {
			return nil, false
		}
		out = append(out, rest[1:i])
		rest = rest[i+1:]
	}
	return out, true
}
