// Package jwtauthn is Envoy's JWT authentication HTTP filter
// (envoy.filters.http.jwt_authn) on mesh-proxy's filter chain: it finds a
// request's tokens where each provider says, verifies them against the
// provider's JWKS (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA) with
// issuer, audiences and lifetime checks, answers 401 for a present but
// invalid token or an unmet requirement, and leaves the verified payload and
// Istio's request.auth attributes in the request's filter state for RBAC.
package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/protofields"
)

// TypeURL is the filter's config type.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"

// MetadataNamespace is where the filter puts, per provider's
// payload_in_metadata name, the verified payload (Envoy's dynamic metadata
// namespace of the filter).
const MetadataNamespace = "envoy.filters.http.jwt_authn"

// AuthnNamespace holds Istio's request.auth attributes of the first verified
// token: "request.auth.principal" (iss/sub), "request.auth.audiences",
// "request.auth.presenter" and "request.auth.claims" (the payload), which
// RBAC metadata matchers read (Istio's istio_authn filter state).
const AuthnNamespace = "istio_authn"

var algs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// Factory registers the filter.
func Factory() httpfilter.Factory {
	return httpfilter.Factory{
		Name:        "envoy.filters.http.jwt_authn",
		ConfigTypes: []string{TypeURL},
		New: func(c httpfilter.Config) (httpfilter.Filter, error) {
			cfg := &jwtv3.JwtAuthentication{}
			if err := c.Any.UnmarshalTo(cfg); err != nil {
				return nil, fmt.Errorf("%s: %w", c.Field, err)
			}
			f, err := CompileWith(cfg, c.Field, c.Env)
			if err != nil {
				return nil, err
			}
			f.denied = c.Env.Counter(c.Env.StatPrefix + "jwt_authn.denied")
			f.allowed = c.Env.Counter(c.Env.StatPrefix + "jwt_authn.allowed")
			return f, nil
		},
	}
}

// Filter is a compiled JwtAuthentication.
type Filter struct {
	providers       map[string]*provider
	all             []*provider // every provider, in name order: where allow_missing looks for tokens
	rules           []rule
	allowed, denied *atomic.Int64
}

type provider struct {
	name, issuer      string
	audiences         []string
	keys              *jose.JSONWebKeySet // local_jwks
	remote            *remote             // remote_jwks (keys is nil)
	headers           []tokenHeader
	params, cookies   []string
	forward           bool
	payloadHeader     string
	claimHeaders      [][2]string // header, claim
	payloadInMetadata string
	skew              time.Duration
	requireExp        bool
	cache             *cache
}

type tokenHeader struct{ name, prefix string }

type rule struct {
	prefix, path string
	req          *requirement
}

type reqKind uint8

const (
	reqProvider reqKind = iota
	reqAny
	reqAll
	reqAllowMissing
	reqAllowMissingOrFailed
)

type requirement struct {
	kind     reqKind
	provider *provider
	audience []string // provider_and_audiences: overrides the provider's
	subs     []*requirement
}

// Compile checks and builds a JwtAuthentication; fields it does not carry
// out are refused by name. A remote_jwks provider built here has no
// cluster to fetch through (CompileWith gives it the proxy's).
func Compile(c *jwtv3.JwtAuthentication, f string) (*Filter, error) {
	return CompileWith(c, f, httpfilter.Env{})
}

// CompileWith is Compile in a proxy: remote_jwks providers fetch through
// env's clusters and keep their keys in env's Shared store.
func CompileWith(c *jwtv3.JwtAuthentication, f string, env httpfilter.Env) (*Filter, error) {
	if err := protofields.Check(c, f, "providers", "rules"); err != nil {
		return nil, err
	}
	fl := &Filter{providers: map[string]*provider{}, allowed: new(atomic.Int64), denied: new(atomic.Int64)}
	names := make([]string, 0, len(c.GetProviders()))
	for n := range c.GetProviders() {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		p, err := compileProvider(n, c.GetProviders()[n], fmt.Sprintf("%s.providers[%s]", f, n), env)
		if err != nil {
			return nil, err
		}
		fl.providers[n] = p
		fl.all = append(fl.all, p)
	}
	for i, r := range c.GetRules() {
		rf := fmt.Sprintf("%s.rules[%d]", f, i)
		if err := protofields.Check(r, rf, "match", "requires"); err != nil {
			return nil, err
		}
		m := r.GetMatch()
		if err := protofields.Check(m, rf+".match", "prefix", "path"); err != nil {
			return nil, err
		}
		ru := rule{prefix: m.GetPrefix(), path: m.GetPath()}
		if m.GetPathSpecifier() == nil {
			return nil, fmt.Errorf("%s.match: a prefix or path is required", rf)
		}
		var err error
		if ru.req, err = fl.compileReq(r.GetRequires(), rf+".requires"); err != nil {
			return nil, err
		}
		fl.rules = append(fl.rules, ru)
	}
	return fl, nil
}

func compileProvider(name string, p *jwtv3.JwtProvider, f string, env httpfilter.Env) (*provider, error) {
	if err := protofields.Check(p, f, "issuer", "audiences", "local_jwks", "remote_jwks", "forward", "from_headers", "from_params",
		"from_cookies", "forward_payload_header", "payload_in_metadata", "clock_skew_seconds", "claim_to_headers",
		"require_expiration"); err != nil {
		return nil, err
	}
	out := &provider{name: name, issuer: p.GetIssuer(), audiences: p.GetAudiences(), forward: p.GetForward(),
		params: p.GetFromParams(), cookies: p.GetFromCookies(), payloadHeader: p.GetForwardPayloadHeader(),
		payloadInMetadata: p.GetPayloadInMetadata(), skew: 60 * time.Second, requireExp: p.GetRequireExpiration(),
		cache: &cache{m: map[string]*verified{}}}
	if s := p.GetClockSkewSeconds(); s != 0 {
		out.skew = time.Duration(s) * time.Second
	}
	switch {
	case p.GetRemoteJwks() != nil:
		r, err := compileRemote(p.GetRemoteJwks(), f+".remote_jwks", env)
		if err != nil {
			return nil, err
		}
		out.remote = r
	case p.GetLocalJwks() != nil:
		lj := p.GetLocalJwks()
		if err := protofields.Check(lj, f+".local_jwks", "inline_string", "inline_bytes"); err != nil {
			return nil, err
		}
		raw := lj.GetInlineString()
		if raw == "" {
			raw = string(lj.GetInlineBytes())
		}
		out.keys = &jose.JSONWebKeySet{}
		if err := json.Unmarshal([]byte(raw), out.keys); err != nil {
			return nil, fmt.Errorf("%s.local_jwks: not a JWKS: %w", f, err)
		}
	default:
		return nil, fmt.Errorf("%s: one of local_jwks or remote_jwks is required", f)
	}
	for i, h := range p.GetFromHeaders() {
		if h.GetName() == "" {
			return nil, fmt.Errorf("%s.from_headers[%d].name: empty", f, i)
		}
		out.headers = append(out.headers, tokenHeader{name: http.CanonicalHeaderKey(h.GetName()), prefix: h.GetValuePrefix()})
	}
	if len(out.headers) == 0 && len(out.params) == 0 && len(out.cookies) == 0 {
		// Envoy's defaults: Authorization: Bearer and access_token.
		out.headers = []tokenHeader{{name: "Authorization", prefix: "Bearer "}}
		out.params = []string{"access_token"}
	}
	for i, ch := range p.GetClaimToHeaders() {
		if ch.GetHeaderName() == "" || ch.GetClaimName() == "" {
			return nil, fmt.Errorf("%s.claim_to_headers[%d]: header_name and claim_name are required", f, i)
		}
		out.claimHeaders = append(out.claimHeaders, [2]string{ch.GetHeaderName(), ch.GetClaimName()})
	}
	return out, nil
}

func (fl *Filter) compileReq(r *jwtv3.JwtRequirement, f string) (*requirement, error) {
	if r == nil {
		return nil, nil // the rule requires nothing
	}
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		p := fl.providers[t.ProviderName]
		if p == nil {
			return nil, fmt.Errorf("%s.provider_name: no provider %q", f, t.ProviderName)
		}
		return &requirement{kind: reqProvider, provider: p}, nil
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		p := fl.providers[t.ProviderAndAudiences.GetProviderName()]
		if p == nil {
			return nil, fmt.Errorf("%s.provider_and_audiences: no provider %q", f, t.ProviderAndAudiences.GetProviderName())
		}
		return &requirement{kind: reqProvider, provider: p, audience: t.ProviderAndAudiences.GetAudiences()}, nil
	case *jwtv3.JwtRequirement_RequiresAny, *jwtv3.JwtRequirement_RequiresAll:
		out := &requirement{kind: reqAny}
		subs := r.GetRequiresAny().GetRequirements()
		if _, all := t.(*jwtv3.JwtRequirement_RequiresAll); all {
			out.kind, subs = reqAll, r.GetRequiresAll().GetRequirements()
		}
		for i, s := range subs {
			c, err := fl.compileReq(s, fmt.Sprintf("%s.requirements[%d]", f, i))
			if err != nil {
				return nil, err
			}
			out.subs = append(out.subs, c)
		}
		return out, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return &requirement{kind: reqAllowMissing}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &requirement{kind: reqAllowMissingOrFailed}, nil
	}
	return nil, fmt.Errorf("%s: requirement %T is not supported", f, r.GetRequiresType())
}

// outcome of one requirement on one request.
type outcome uint8

const (
	ok outcome = iota
	missing
	failed
)

// DecodeHeaders verifies the request's tokens as the first matching rule requires.
func (fl *Filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	var req *requirement
	matched := false
	for i := range fl.rules {
		r := &fl.rules[i]
		if (r.path != "" && s.Request.URL.Path == r.path) || (r.path == "" && strings.HasPrefix(s.Request.URL.Path, r.prefix)) {
			req, matched = r.req, true
			break
		}
	}
	st := &state{s: s, fl: fl}
	// Every provider's tokens are verified, whatever the rule, so that a
	// valid token still yields its claims (Envoy verifies them too).
	for _, p := range fl.all {
		st.check(p)
	}
	if !matched || req == nil {
		fl.allowed.Add(1)
		return httpfilter.Continue
	}
	switch st.eval(req) {
	case ok:
		fl.allowed.Add(1)
		return httpfilter.Continue
	case missing:
		fl.denied.Add(1)
		return s.SendLocalReply(http.StatusUnauthorized, wwwAuth("Jwt is missing"), "Jwt is missing", "")
	}
	fl.denied.Add(1)
	return s.SendLocalReply(http.StatusUnauthorized, wwwAuth("Jwt verification fails"), "Jwt verification fails", "")
}

func wwwAuth(msg string) http.Header {
	return http.Header{"Www-Authenticate": {`Bearer realm="` + msg + `"`}}
}

// state is one request's token results, per provider.
type state struct {
	s       *httpfilter.Stream
	fl      *Filter
	results map[*provider]result
	anyTok  bool
}

type result struct {
	out outcome
	v   *verified
}

func (st *state) check(p *provider) result {
	if r, done := st.results[p]; done {
		return r
	}
	tok, loc := p.extract(st.s.Request)
	r := result{out: missing}
	if tok != "" {
		st.anyTok = true
		v, err := p.verify(tok, time.Now(), st.s.Done())
		if err != nil {
			r.out = failed
		} else {
			r = result{out: ok, v: v}
			p.apply(st.s, v, loc)
		}
	}
	if st.results == nil {
		st.results = map[*provider]result{}
	}
	st.results[p] = r
	return r
}

func (st *state) eval(r *requirement) outcome {
	switch r.kind {
	case reqProvider:
		res := st.check(r.provider)
		if res.out == ok && len(r.audience) > 0 && !intersects(res.v.aud, r.audience) {
			return failed
		}
		return res.out
	case reqAllowMissingOrFailed:
		return ok
	case reqAllowMissing:
		if st.anyTok {
			return failed // a token is there and no other requirement accepted it
		}
		return ok
	case reqAll:
		for _, sub := range r.subs {
			if o := st.eval(sub); o != ok {
				return o
			}
		}
		return ok
	}
	worst := missing
	for _, sub := range r.subs { // reqAny
		switch st.eval(sub) {
		case ok:
			return ok
		case failed:
			worst = failed
		}
	}
	return worst
}

// tokenLoc says where a token was found, so forward=false can strip it.
type tokenLoc struct {
	header string
}

func (p *provider) extract(r *http.Request) (string, tokenLoc) {
	for _, h := range p.headers {
		for _, v := range r.Header[h.name] {
			if h.prefix == "" {
				if v != "" {
					return v, tokenLoc{header: h.name}
				}
				continue
			}
			if len(v) > len(h.prefix) && strings.EqualFold(v[:len(h.prefix)], h.prefix) {
				return v[len(h.prefix):], tokenLoc{header: h.name}
			}
		}
	}
	if len(p.params) > 0 && r.URL.RawQuery != "" {
		q := r.URL.Query()
		for _, n := range p.params {
			if v := q.Get(n); v != "" {
				return v, tokenLoc{}
			}
		}
	}
	for _, n := range p.cookies {
		if c, err := r.Cookie(n); err == nil && c.Value != "" {
			return c.Value, tokenLoc{}
		}
	}
	return "", tokenLoc{}
}

// verified is a token that passed, with what filters after need of it.
type verified struct {
	payload   map[string]any
	raw       []byte // the payload as sent, for forward_payload_header
	principal string
	aud       []string
	exp       time.Time
}

// verify checks tok; a remote_jwks provider's first fetch is waited for
// until done closes (the client went away).
func (p *provider) verify(tok string, now time.Time, done <-chan struct{}) (*verified, error) {
	if v := p.cache.get(tok, now); v != nil {
		return v, nil
	}
	set := p.keys
	if p.remote != nil {
		if set = p.remote.get(done); set == nil {
			return nil, fmt.Errorf("no JWKS from %s yet", p.remote.uri)
		}
	}
	parsed, err := josejwt.ParseSigned(tok, algs)
	if err != nil {
		return nil, err
	}
	if len(parsed.Headers) != 1 {
		return nil, fmt.Errorf("want one signature")
	}
	kid := parsed.Headers[0].KeyID
	var keys []jose.JSONWebKey
	if kid != "" {
		keys = set.Key(kid)
	} else {
		keys = set.Keys
	}
	var std josejwt.Claims
	var payload map[string]any
	verifiedBy := false
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if err := parsed.Claims(k.Key, &std, &payload); err == nil {
			verifiedBy = true
			break
		}
	}
	if !verifiedBy {
		return nil, fmt.Errorf("no key of the JWKS verifies the signature (kid %q)", kid)
	}
	if p.issuer != "" && std.Issuer != p.issuer {
		return nil, fmt.Errorf("issuer %q, want %q", std.Issuer, p.issuer)
	}
	if len(p.audiences) > 0 && !intersects(std.Audience, p.audiences) {
		return nil, fmt.Errorf("audiences %v, want one of %v", []string(std.Audience), p.audiences)
	}
	if p.requireExp && std.Expiry == nil {
		return nil, fmt.Errorf("no exp")
	}
	if std.Expiry != nil && now.After(std.Expiry.Time().Add(p.skew)) {
		return nil, fmt.Errorf("expired")
	}
	if std.NotBefore != nil && now.Add(p.skew).Before(std.NotBefore.Time()) {
		return nil, fmt.Errorf("not yet valid")
	}
	raw, _ := json.Marshal(payload)
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			raw = b
		}
	}
	v := &verified{payload: payload, raw: raw, principal: std.Issuer + "/" + std.Subject, aud: std.Audience}
	if std.Expiry != nil {
		v.exp = std.Expiry.Time()
	} else {
		v.exp = now.Add(5 * time.Minute) // a token without exp is re-verified now and then
	}
	p.cache.put(tok, v)
	return v, nil
}

// apply carries out the provider's outputs for a verified token.
func (p *provider) apply(s *httpfilter.Stream, v *verified, loc tokenLoc) {
	h := s.Request.Header
	if !p.forward && loc.header != "" {
		h.Del(loc.header)
	}
	if p.payloadHeader != "" {
		h.Set(p.payloadHeader, base64.RawURLEncoding.EncodeToString(v.raw))
	}
	for _, ch := range p.claimHeaders {
		if c, ok := v.payload[ch[1]]; ok {
			switch x := c.(type) {
			case string:
				h.Set(ch[0], x)
			case float64, bool:
				h.Set(ch[0], fmt.Sprint(x))
			}
		}
	}
	md := s.Meta()
	if p.payloadInMetadata != "" {
		m, _ := md.Get(MetadataNamespace).(map[string]any)
		if m == nil {
			m = map[string]any{}
			md.Set(MetadataNamespace, m)
		}
		m[p.payloadInMetadata] = v.payload
	}
	if md.Get(AuthnNamespace) == nil {
		auds := make([]any, len(v.aud))
		for i, a := range v.aud {
			auds[i] = a
		}
		md.Set(AuthnNamespace, map[string]any{
			"request.auth.principal": v.principal,
			"request.auth.audiences": auds,
			"request.auth.presenter": v.payload["azp"],
			"request.auth.claims":    spaceDelimited(v.payload),
		})
	}
}

// spaceDelimited returns the claims as authorization matches them: the
// "scope" and "permission" claims, space-delimited strings by convention,
// as lists of their values (Istio does the same).
func spaceDelimited(p map[string]any) map[string]any {
	split := func(k string) (any, bool) {
		s, ok := p[k].(string)
		if !ok {
			return nil, false
		}
		var l []any
		for _, f := range strings.Fields(s) {
			l = append(l, f)
		}
		return l, true
	}
	sc, ok1 := split("scope")
	pe, ok2 := split("permission")
	if !ok1 && !ok2 {
		return p
	}
	out := make(map[string]any, len(p))
	for k, v := range p {
		out[k] = v
	}
	if ok1 {
		out["scope"] = sc
	}
	if ok2 {
		out["permission"] = pe
	}
	return out
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// cache keeps verified tokens until they expire, so a token is verified
// once while cached (bounded: full, it starts over).
type cache struct {
	mu sync.Mutex
	m  map[string]*verified
}

const cacheSize = 1000

func (c *cache) get(tok string, now time.Time) *verified {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.m[tok]
	if v != nil && now.After(v.exp) {
		delete(c.m, tok)
		return nil
	}
	return v
}

func (c *cache) put(tok string, v *verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= cacheSize {
		clear(c.m)
	}
	c.m[tok] = v
}
