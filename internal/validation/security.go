package validation

import (
	"encoding/json"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"istio.io/api/security/v1beta1"
	security "istio.io/client-go/pkg/apis/security/v1"
)

func validatePeerAuthentication(l *list, o *security.PeerAuthentication) {
	s := &o.Spec
	validateSelector(l, s.Selector, "spec.selector")
	if len(s.PortLevelMtls) > 0 && s.Selector == nil {
		l.err("spec.portLevelMtls", "port-level mTLS needs a selector: a namespace- or mesh-wide policy cannot name ports")
	}
	for port := range s.PortLevelMtls {
		validatePort(l, port, key("spec.portLevelMtls", strconv.Itoa(int(port))))
	}
}

// conditionKeys are the attribute names an AuthorizationPolicy condition may use.
var conditionKeys = []string{"request.headers[", "source.ip", "remote.ip", "source.namespace", "source.principal",
	"source.serviceAccount", "request.auth.principal", "request.auth.audiences", "request.auth.presenter", "request.auth.claims[",
	"destination.ip", "destination.port", "connection.sni", "experimental.envoy.filters."}

func validateAuthorizationPolicy(l *list, o *security.AuthorizationPolicy) {
	s := &o.Spec
	validateSelector(l, s.Selector, "spec.selector")
	if s.Selector != nil && (s.TargetRef != nil || len(s.TargetRefs) > 0) {
		l.err("spec.selector", "selector and targetRef(s) cannot both be set")
	}
	switch s.Action {
	case v1beta1.AuthorizationPolicy_CUSTOM:
		if s.GetProvider() == nil || s.GetProvider().Name == "" {
			l.err("spec.provider.name", "action CUSTOM needs provider.name")
		}
	default:
		if s.GetProvider() != nil {
			l.err("spec.provider", "provider is only used with action CUSTOM")
		}
	}
	for i, r := range s.Rules {
		p := idx("spec.rules", i)
		if r == nil {
			l.err(p, "rule must not be empty")
			continue
		}
		for j, f := range r.From {
			fp := idx(p+".from", j)
			if f.Source == nil {
				l.err(fp+".source", "from needs a source")
				continue
			}
			src := f.Source
			if len(src.Principals)+len(src.NotPrincipals)+len(src.RequestPrincipals)+len(src.NotRequestPrincipals)+len(src.Namespaces)+len(src.NotNamespaces)+len(src.IpBlocks)+len(src.NotIpBlocks)+len(src.RemoteIpBlocks)+len(src.NotRemoteIpBlocks)+len(src.ServiceAccounts)+len(src.NotServiceAccounts)+len(src.TrustDomains)+len(src.NotTrustDomains) == 0 {
				l.err(fp+".source", "source must have at least one field set")
			}
			for name, blocks := range map[string][]string{"ipBlocks": src.IpBlocks, "notIpBlocks": src.NotIpBlocks, "remoteIpBlocks": src.RemoteIpBlocks, "notRemoteIpBlocks": src.NotRemoteIpBlocks} {
				for k, b := range blocks {
					if !isIPOrCIDR(b) {
						l.err(idx(fp+".source."+name, k), "%q is not an IP address or CIDR block", b)
					}
				}
			}
			for k, n := range src.Namespaces {
				if n == "" {
					l.err(idx(fp+".source.namespaces", k), "namespace must not be empty")
				}
			}
		}
		for j, t := range r.To {
			tp := idx(p+".to", j)
			if t.Operation == nil {
				l.err(tp+".operation", "to needs an operation")
				continue
			}
			op := t.Operation
			if len(op.Hosts)+len(op.NotHosts)+len(op.Ports)+len(op.NotPorts)+len(op.Methods)+len(op.NotMethods)+len(op.Paths)+len(op.NotPaths) == 0 {
				l.err(tp+".operation", "operation must have at least one field set")
			}
			for name, ports := range map[string][]string{"ports": op.Ports, "notPorts": op.NotPorts} {
				for k, port := range ports {
					n, err := strconv.Atoi(port)
					if err != nil || n < 1 || n > 65535 {
						l.err(idx(tp+".operation."+name, k), "%q is not a port number (1-65535)", port)
					}
				}
			}
			for k, m := range op.Methods {
				if m != strings.ToUpper(m) {
					l.warn(idx(tp+".operation.methods", k), "HTTP methods are case-sensitive; %q will not match %q", m, strings.ToUpper(m))
				}
			}
		}
		for j, c := range r.When {
			cp := idx(p+".when", j)
			if len(c.Values) == 0 && len(c.NotValues) == 0 {
				l.err(cp, "a condition needs values or notValues")
			}
			known := false
			for _, k := range conditionKeys {
				if c.Key == k || (strings.HasSuffix(k, "[") || strings.HasSuffix(k, ".")) && strings.HasPrefix(c.Key, k) {
					known = true
				}
			}
			if !known {
				l.err(cp+".key", "unknown condition key %q", c.Key)
			}
		}
	}
}

func isIPOrCIDR(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

func validateRequestAuthentication(l *list, o *security.RequestAuthentication) {
	s := &o.Spec
	validateSelector(l, s.Selector, "spec.selector")
	issuers := map[string]bool{}
	for i, r := range s.JwtRules {
		p := idx("spec.jwtRules", i)
		if r.Issuer == "" {
			l.err(p+".issuer", "issuer is required")
		} else if issuers[r.Issuer] {
			l.warn(p+".issuer", "issuer %q appears in two rules", r.Issuer)
		}
		issuers[r.Issuer] = true
		if r.JwksUri != "" {
			u, err := url.Parse(r.JwksUri)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				l.err(p+".jwksUri", "%q is not an http(s) URL", r.JwksUri)
			} else if u.Scheme == "http" {
				l.warn(p+".jwksUri", "keys fetched over plain http can be tampered with; use https")
			}
		}
		if r.JwksUri != "" && r.Jwks != "" {
			l.warn(p+".jwks", "jwks and jwksUri are both set; jwks wins")
		}
		for j, h := range r.FromHeaders {
			if h.Name == "" {
				l.err(idx(p+".fromHeaders", j)+".name", "header name is required")
			}
		}
		if r.Jwks != "" {
			var set jose.JSONWebKeySet
			if err := json.Unmarshal([]byte(r.Jwks), &set); err != nil {
				l.err(p+".jwks", "not a JWKS the proxy can read (%v); every token this rule covers is refused", err)
			}
		}
		for j, c := range r.OutputClaimToHeaders {
			if c.Header == "" || c.Claim == "" {
				l.err(idx(p+".outputClaimToHeaders", j), "header and claim are required")
			}
		}
	}
}
