package xds

import (
	"testing"

	securityapi "istio.io/api/security/v1beta1"
)

// A JWT rule pilot cannot write as it stands becomes one the proxy accepts
// and that refuses on the safe side: inline jwks mesh-proxy cannot read
// (it would refuse the whole listener) is replaced by no keys, so every
// token the rule covers gets 401; nameless token headers and claim headers,
// which can carry nothing, are left out.
func TestJWTRuleMadeSafe(t *testing.T) {
	for _, jwks := range []string{"not json", `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`} {
		p := jwtProvider(&securityapi.JWTRule{Issuer: "https://a.example", Jwks: jwks,
			FromHeaders:          []*securityapi.JWTHeader{{Name: ""}, {Name: "x-jwt"}},
			OutputClaimToHeaders: []*securityapi.ClaimToHeader{{Header: "", Claim: "sub"}, {Header: "x-sub", Claim: ""}, {Header: "x-team", Claim: "team"}}})
		if got := p.GetLocalJwks().GetInlineString(); got != noKeys {
			t.Errorf("jwks %q: pilot wrote %q; want %s (every token refused)", jwks, got, noKeys)
		}
		if len(p.FromHeaders) != 1 || p.FromHeaders[0].Name != "x-jwt" {
			t.Errorf("from_headers %v; want x-jwt alone", p.FromHeaders)
		}
		if len(p.ClaimToHeaders) != 1 || p.ClaimToHeaders[0].HeaderName != "x-team" {
			t.Errorf("claim_to_headers %v; want x-team alone", p.ClaimToHeaders)
		}
	}
	good := `{"keys":[]}`
	if p := jwtProvider(&securityapi.JWTRule{Issuer: "https://a.example", Jwks: good}); p.GetLocalJwks().GetInlineString() != good {
		t.Errorf("a readable jwks was replaced: %q", p.GetLocalJwks().GetInlineString())
	}
}
