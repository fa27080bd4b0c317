package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

// noKeys is the JWKS of a rule whose keys pilot could not get: every token
// fails against it (401), as with istiod, and requests without one pass.
const noKeys = `{"keys":[]}`

// usableJWKS reports whether keys is a JWKS mesh-proxy's jwt_authn filter
// can read (it reads it with go-jose too). An inline jwks or a fetched
// document that is not would make the proxy refuse the whole listener, so
// the proxy would keep its old config, or at start have no inbound
// listener; such a rule gets noKeys instead: every token it covers is
// refused.
func usableJWKS(keys string) bool {
	var set jose.JSONWebKeySet
	return json.Unmarshal([]byte(keys), &set) == nil
}

// jwtFilter is the jwt_authn filter for the RequestAuthentications of a
// workload whose proxies see the services of sc, as istiod builds it: one
// provider per JWT rule, its keys inline or fetched by the proxy
// (jwksSource), and one requirement: every REQUIRED rule's token, and any
// optional rule's token or none (a present token that fails is refused).
func (pc *PushContext) jwtFilter(ras []*securityv1.RequestAuthentication, sc *scope) *hcmv3.HttpFilter {
	if len(ras) == 0 {
		return nil
	}
	sorted := append([]*securityv1.RequestAuthentication(nil), ras...)
	sort.Slice(sorted, func(i, j int) bool {
		return sorted[i].Namespace+"/"+sorted[i].Name < sorted[j].Namespace+"/"+sorted[j].Name
	})
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}}
	var required, optional []*jwtv3.JwtRequirement
	n := 0
	for _, ra := range sorted {
		for _, jr := range ra.Spec.JwtRules {
			name := fmt.Sprintf("origins-%d", n)
			n++
			cfg.Providers[name] = pc.jwtProvider(jr, sc)
			r := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
			if jr.GetPresence() == securityapi.JWTRule_REQUIRED {
				required = append(required, r)
			} else {
				optional = append(optional, r)
			}
		}
	}
	if n == 0 {
		return nil
	}
	optional = append(optional, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	req := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: optional}}}
	if len(required) > 0 {
		if len(optional) > 1 {
			required = append(required, req)
		}
		req = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: required}}}
		if len(required) == 1 {
			req = required[0]
		}
	}
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
	}}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.jwt_authn", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

func (pc *PushContext) jwtProvider(jr *securityapi.JWTRule, sc *scope) *jwtv3.JwtProvider {
	p := &jwtv3.JwtProvider{
		Issuer:               jr.GetIssuer(),
		Audiences:            jr.GetAudiences(),
		Forward:              jr.GetForwardOriginalToken(),
		FromParams:           jr.GetFromParams(),
		FromCookies:          jr.GetFromCookies(),
		ForwardPayloadHeader: jr.GetOutputPayloadToHeader(),
		PayloadInMetadata:    jr.GetIssuer(),
	}
	if remote, local := pc.jwksSource(jr, sc); remote != nil {
		p.JwksSourceSpecifier = remote
	} else {
		p.JwksSourceSpecifier = local
	}
	// A header or claim with no name can carry nothing (Envoy and istiod's
	// validation refuse them, mesh-proxy would NACK): such entries are left out.
	for _, h := range jr.GetFromHeaders() {
		if h.GetName() == "" {
			continue
		}
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
	}
	for _, c := range jr.GetOutputClaimToHeaders() {
		if c.GetHeader() == "" || c.GetClaim() == "" {
			continue
		}
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.GetHeader(), ClaimName: c.GetClaim()})
	}
	return p
}

// remoteJWKSCache is how long a proxy keeps keys it fetched before it
// refetches them: istiod sends 5 minutes.
const remoteJWKSCache = 5 * time.Minute

// jwksSource is where a rule's keys come from, by the fetch mode
// (model.JWKSFetchMode, Istio's PILOT_JWT_ENABLE_REMOTE_JWKS):
//   - istiod: pilot fetches jwksUri (or the issuer's OpenID configuration
//     when neither jwks nor jwksUri is set) and inlines the keys; inline
//     jwks are sent as they are;
//   - envoy: a rule with jwksUri gets remote_jwks, fetched by the proxy
//     through the outbound cluster of the URI's host and port; a host the
//     proxy does not see has no such cluster, so its tokens are refused,
//     as with istiod (which logs it);
//   - hybrid: remote_jwks when the host is a Service or ServiceEntry the
//     proxy sees with that port, else as istiod.
func (pc *PushContext) jwksSource(jr *securityapi.JWTRule, sc *scope) (*jwtv3.JwtProvider_RemoteJwks, *jwtv3.JwtProvider_LocalJwks) {
	timeout := 5 * time.Second
	if d := jr.GetTimeout(); d != nil && d.AsDuration() > 0 {
		timeout = d.AsDuration()
	}
	if mode := pc.Snap.JWKSFetch; mode == model.JWKSHybrid || mode == model.JWKSEnvoy {
		if uri := jr.GetJwksUri(); uri != "" {
			host, port, err := jwksHostPort(uri)
			if err != nil {
				return nil, inlineJWKS(noKeys) // nothing can fetch it: refused, as a proxy would refuse the URI
			}
			seen := false
			if svc := pc.Snap.ServiceByHost(host); svc != nil && sc != nil && sc.hosts[host] {
				_, seen = svc.PortByNumber(port)
			}
			if seen || mode == model.JWKSEnvoy {
				return &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
					HttpUri: &corev3.HttpUri{Uri: uri, Timeout: durationpb.New(timeout),
						HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: OutboundClusterName(port, "", host)}},
					CacheDuration: durationpb.New(remoteJWKSCache),
				}}, nil
			}
		}
	}
	keys := jr.GetJwks()
	if keys != "" && !usableJWKS(keys) {
		keys = noKeys
	}
	if keys == "" {
		var err error
		if keys, err = jwks.keys(jr.GetJwksUri(), jr.GetIssuer(), timeout); err != nil {
			keys = noKeys
		}
	}
	return nil, inlineJWKS(keys)
}

func inlineJWKS(keys string) *jwtv3.JwtProvider_LocalJwks {
	return &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: keys}}}
}

// jwksHostPort is the host and port a jwksUri is fetched from (80 or 443 when the URI names none).
func jwksHostPort(uri string) (string, uint32, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", 0, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return "", 0, fmt.Errorf("jwksUri %q: not an http or https URL", uri)
	}
	port := uint32(80)
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("jwksUri %q: bad port", uri)
		}
		port = uint32(n)
	}
	return u.Hostname(), port, nil
}

// jwksCache fetches and keeps JWKS documents for pilot's whole life (not a
// snapshot's): a document is refetched after 20 minutes, as istiod does, and
// a failed fetch is retried after 30 seconds.
type jwksCache struct {
	mu      sync.Mutex
	entries map[string]*jwksEntry
	client  *http.Client
}

type jwksEntry struct {
	keys    string
	err     error
	fetched time.Time
}

var jwks = &jwksCache{entries: map[string]*jwksEntry{}, client: &http.Client{}}

func (c *jwksCache) keys(uri, issuer string, timeout time.Duration) (string, error) {
	key := uri
	if key == "" {
		key = "issuer:" + issuer
	}
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil && ((e.err == nil && time.Since(e.fetched) < 20*time.Minute) || (e.err != nil && time.Since(e.fetched) < 30*time.Second)) {
		return e.keys, e.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	keys, err := c.fetch(ctx, uri, issuer)
	if err != nil && e != nil && e.err == nil {
		keys, err = e.keys, nil // keep serving the last good keys
	}
	c.mu.Lock()
	c.entries[key] = &jwksEntry{keys: keys, err: err, fetched: time.Now()}
	c.mu.Unlock()
	return keys, err
}

func (c *jwksCache) fetch(ctx context.Context, uri, issuer string) (string, error) {
	if uri == "" {
		if issuer == "" {
			return "", fmt.Errorf("neither jwks, jwksUri nor issuer")
		}
		doc, err := c.get(ctx, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration")
		if err != nil {
			return "", err
		}
		var oidc struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(doc, &oidc); err != nil || oidc.JWKSURI == "" {
			return "", fmt.Errorf("issuer %s: OpenID configuration names no jwks_uri", issuer)
		}
		uri = oidc.JWKSURI
	}
	b, err := c.get(ctx, uri)
	if err != nil {
		return "", err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return "", fmt.Errorf("%s: not a JWKS: %w", uri, err)
	}
	return string(b), nil
}

func (c *jwksCache) get(ctx context.Context, uri string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", uri, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
