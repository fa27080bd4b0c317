// Package authz says which parts of Istio's AuthorizationPolicy rules this
// mesh enforces, so pilot (which must not widen an ALLOW it cannot fully
// translate) and analyze (which tells the user) agree.
package authz

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	securityapi "istio.io/api/security/v1beta1"
)

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
		return CondInfo{HTTPOnly: true, Why: "needs request authentication (JWT), which mesh-proxy does not do yet"}
	}
	if _, ok := HeaderConditionName(key); ok {
		return CondInfo{Enforced: true, HTTPOnly: true}
	}
	if strings.HasPrefix(key, "request.auth.claims[") {
		return CondInfo{HTTPOnly: true, Why: "needs request authentication (JWT), which mesh-proxy does not do yet"}
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

// translated lists, per message of a rule, the fields pilot's RBAC
// translation reads (by proto name).
var translated = map[protoreflect.FullName]map[protoreflect.Name]bool{
	"istio.security.v1beta1.Rule":      {"from": true, "to": true, "when": true},
	"istio.security.v1beta1.Rule.From": {"source": true},
	"istio.security.v1beta1.Rule.To":   {"operation": true},
	"istio.security.v1beta1.Source": {
		"principals": true, "not_principals": true, "request_principals": true, "not_request_principals": true,
		"namespaces": true, "not_namespaces": true, "service_accounts": true, "not_service_accounts": true,
		"ip_blocks": true, "not_ip_blocks": true, "remote_ip_blocks": true, "not_remote_ip_blocks": true,
		"trust_domains": true, "not_trust_domains": true,
	},
	"istio.security.v1beta1.Operation": {
		"hosts": true, "not_hosts": true, "ports": true, "not_ports": true,
		"methods": true, "not_methods": true, "paths": true, "not_paths": true,
	},
	"istio.security.v1beta1.Condition": {"key": true, "values": true, "not_values": true},
}

// UnknownFields returns the paths (relative to the rule) of set fields the
// translation does not read: fields a newer istio.io/api added. Pilot
// treats them as parts it cannot enforce.
func UnknownFields(rule *securityapi.Rule) []string {
	var out []string
	walk(rule.ProtoReflect(), "", &out)
	return out
}

func walk(m protoreflect.Message, path string, out *[]string) {
	known := translated[m.Descriptor().FullName()]
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := fd.JSONName()
		if path != "" {
			p = path + "." + p
		}
		if !known[fd.Name()] {
			*out = append(*out, p)
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), p+"["+itoa(i)+"]", out)
			}
		case fd.Message() != nil && !fd.IsMap():
			walk(v.Message(), p, out)
		}
		return true
	})
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
