package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/protobuf/types/known/emptypb"

	"mesh.dev/mesh/internal/proxy/httpfilter"
)

type signer struct {
	alg jose.SignatureAlgorithm
	kid string
	key crypto.Signer
}

func newSigners(t *testing.T) []signer {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []signer{{jose.RS256, "rsa", rsaKey}, {jose.PS256, "rsa", rsaKey}, {jose.ES256, "ec", ecKey}, {jose.EdDSA, "ed", edKey}}
}

func jwks(t *testing.T, ss []signer) string {
	t.Helper()
	set := jose.JSONWebKeySet{}
	seen := map[string]bool{}
	for _, s := range ss {
		if seen[s.kid] {
			continue
		}
		seen[s.kid] = true
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: s.key.Public(), KeyID: s.kid, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sign(t *testing.T, s signer, claims map[string]any) string {
	t.Helper()
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(sg).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// istioStyle is the config pilot gives a RequestAuthentication: the token
// is optional, but a token that is present must verify.
func istioStyle(keys string, mod func(*jwtv3.JwtProvider)) *jwtv3.JwtAuthentication {
	p := &jwtv3.JwtProvider{Issuer: "https://issuer.example", Audiences: []string{"reviews"},
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: keys}}},
		PayloadInMetadata:   "https://issuer.example"}
	if mod != nil {
		mod(p)
	}
	return &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"origins-0": p},
		Rules: []*jwtv3.RequirementRule{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
				RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}},
					{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
				}}}}},
		}},
	}
}

func run(t *testing.T, f *Filter, r *http.Request) (*httpfilter.Stream, int) {
	t.Helper()
	s := &httpfilter.Stream{}
	s.Reset(nil, r, httpfilter.Peer{}, nil, nil)
	if f.DecodeHeaders(s) == httpfilter.Continue {
		return s, 0
	}
	rep, _ := s.Reply()
	return s, rep.Code
}

func TestTokensVerified(t *testing.T) {
	ss := newSigners(t)
	keys := jwks(t, ss)
	other := newSigners(t) // same kids, other keys: forged signatures
	f, err := Compile(istioStyle(keys, nil), "jwt")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := map[string]any{"iss": "https://issuer.example", "sub": "alice", "aud": "reviews", "exp": now.Add(time.Hour).Unix(), "groups": []string{"admin"}}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for a, b := range good {
			c[a] = b
		}
		c[k] = v
		return c
	}
	bearer := func(tok string) *http.Request {
		r, _ := http.NewRequest("GET", "http://reviews/r", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	for _, s := range ss {
		t.Run(string(s.alg), func(t *testing.T) {
			st, code := run(t, f, bearer(sign(t, s, good)))
			if code != 0 {
				t.Fatalf("valid %s token: %d", s.alg, code)
			}
			a, _ := st.Meta().Get(AuthnNamespace).(map[string]any)
			if a["request.auth.principal"] != "https://issuer.example/alice" {
				t.Errorf("principal %v", a["request.auth.principal"])
			}
			if st.Request.Header.Get("Authorization") != "" {
				t.Error("the token was forwarded; forward is false")
			}
			for name, tok := range map[string]string{
				"expired":        sign(t, s, with("exp", now.Add(-2*time.Minute).Unix())),
				"wrong issuer":   sign(t, s, with("iss", "https://evil.example")),
				"wrong audience": sign(t, s, with("aud", "ratings")),
				"forged":         sign(t, other[indexOf(ss, s)], good),
				"unknown kid":    sign(t, signer{s.alg, "nope", s.key}, good),
				"not a JWT":      "abc.def.ghi",
			} {
				if _, code := run(t, f, bearer(tok)); code != http.StatusUnauthorized {
					t.Errorf("%s token: %d, want 401", name, code)
				}
			}
		})
	}
	r, _ := http.NewRequest("GET", "http://reviews/r", nil)
	if st, code := run(t, f, r); code != 0 || st.Meta().Get(AuthnNamespace) != nil {
		t.Errorf("no token: %d; want the request to continue without a principal", code)
	}
	// Cached: the same token again is accepted without a second verify.
	tok := sign(t, ss[0], good)
	run(t, f, bearer(tok))
	if f.all[0].cache.get(tok, time.Now()) == nil {
		t.Error("a verified token is not cached")
	}
}

func indexOf(ss []signer, s signer) int {
	for i := range ss {
		if ss[i].alg == s.alg {
			return i
		}
	}
	return -1
}

func TestTokenLocationsAndOutputs(t *testing.T) {
	ss := newSigners(t)
	f, err := Compile(istioStyle(jwks(t, ss), func(p *jwtv3.JwtProvider) {
		p.FromHeaders = []*jwtv3.JwtHeader{{Name: "x-jwt"}}
		p.FromParams = []string{"token"}
		p.FromCookies = []string{"session"}
		p.Forward = true
		p.ForwardPayloadHeader = "x-jwt-payload"
		p.ClaimToHeaders = []*jwtv3.JwtClaimToHeader{{HeaderName: "x-sub", ClaimName: "sub"}}
	}), "jwt")
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, ss[2], map[string]any{"iss": "https://issuer.example", "sub": "bob", "aud": []string{"x", "reviews"}})
	reqs := map[string]func() *http.Request{
		"header": func() *http.Request {
			r, _ := http.NewRequest("GET", "http://r/", nil)
			r.Header.Set("x-jwt", tok)
			return r
		},
		"param": func() *http.Request { r, _ := http.NewRequest("GET", "http://r/?token="+tok, nil); return r },
		"cookie": func() *http.Request {
			r, _ := http.NewRequest("GET", "http://r/", nil)
			r.AddCookie(&http.Cookie{Name: "session", Value: tok})
			return r
		},
	}
	for name, mk := range reqs {
		st, code := run(t, f, mk())
		if code != 0 {
			t.Errorf("%s: %d", name, code)
			continue
		}
		h := st.Request.Header
		if h.Get("x-sub") != "bob" {
			t.Errorf("%s: x-sub %q", name, h.Get("x-sub"))
		}
		p, err := base64.RawURLEncoding.DecodeString(h.Get("x-jwt-payload"))
		if err != nil || !strings.Contains(string(p), `"sub":"bob"`) {
			t.Errorf("%s: payload header %q", name, h.Get("x-jwt-payload"))
		}
		if name == "header" && h.Get("x-jwt") != tok {
			t.Errorf("forward=true: the token header was removed")
		}
	}
	// The default Authorization header is not a location once others are set.
	r, _ := http.NewRequest("GET", "http://r/", nil)
	r.Header.Set("Authorization", "Bearer garbage")
	if _, code := run(t, f, r); code != 0 {
		t.Errorf("a token where the provider does not look: %d, want continue", code)
	}
}

func TestRefusesWhatItDoesNotCarryOut(t *testing.T) {
	c := istioStyle(`{"keys":[]}`, func(p *jwtv3.JwtProvider) {
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{}}
	})
	if _, err := Compile(c, "jwt"); err == nil || !strings.Contains(err.Error(), "remote_jwks") {
		t.Errorf("remote_jwks: %v; want refused by name", err)
	}
	c = istioStyle(`{"keys":[]}`, nil)
	c.BypassCorsPreflight = true
	if _, err := Compile(c, "jwt"); err == nil || !strings.Contains(err.Error(), "bypass_cors_preflight") {
		t.Errorf("bypass_cors_preflight: %v; want refused by name", err)
	}
}
