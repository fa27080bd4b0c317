package xds

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	securityapi "istio.io/api/security/v1beta1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// A JWT rule pilot cannot write as it stands becomes one the proxy accepts
// and that refuses on the safe side: inline jwks mesh-proxy cannot read
// (it would refuse the whole listener) is replaced by no keys, so every
// token the rule covers gets 401; nameless token headers and claim headers,
// which can carry nothing, are left out.
func TestJWTRuleMadeSafe(t *testing.T) {
	for _, jwks := range []string{"not json", `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`} {
		p := (&PushContext{Snap: model.Build(1, model.Input{})}).jwtProvider(&securityapi.JWTRule{Issuer: "https://a.example", Jwks: jwks,
			FromHeaders:          []*securityapi.JWTHeader{{Name: ""}, {Name: "x-jwt"}},
			OutputClaimToHeaders: []*securityapi.ClaimToHeader{{Header: "", Claim: "sub"}, {Header: "x-sub", Claim: ""}, {Header: "x-team", Claim: "team"}}}, nil)
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
	if p := (&PushContext{Snap: model.Build(1, model.Input{})}).jwtProvider(&securityapi.JWTRule{Issuer: "https://a.example", Jwks: good}, nil); p.GetLocalJwks().GetInlineString() != good {
		t.Errorf("a readable jwks was replaced: %q", p.GetLocalJwks().GetInlineString())
	}
}

// jwtProviders is the jwt_authn providers on the first HTTP chain of a listener, by issuer.
func jwtProviders(t *testing.T, l *listenerv3.Listener) map[string]*jwtv3.JwtProvider {
	t.Helper()
	for _, fc := range l.GetFilterChains() {
		for _, nf := range fc.GetFilters() {
			hcm := &hcmv3.HttpConnectionManager{}
			if nf.GetTypedConfig().UnmarshalTo(hcm) != nil {
				continue
			}
			for _, hf := range hcm.GetHttpFilters() {
				ja := &jwtv3.JwtAuthentication{}
				if hf.GetTypedConfig().UnmarshalTo(ja) != nil {
					continue
				}
				out := map[string]*jwtv3.JwtProvider{}
				for _, p := range ja.GetProviders() {
					out[p.GetIssuer()] = p
				}
				return out
			}
		}
	}
	t.Fatalf("listener %s has no jwt_authn filter", l.GetName())
	return nil
}

// In hybrid mode (Istio's PILOT_JWT_ENABLE_REMOTE_JWKS=hybrid) pilot
// leaves a jwksUri whose host is a ServiceEntry or Service the proxy sees
// to the proxy: remote_jwks through that host's outbound cluster, with
// the rule's timeout and Istio's 5-minute cache. A host the mesh does not
// know, and a Service port it does not have, pilot fetches and inlines.
// In envoy mode every jwksUri is the proxy's; in istiod mode none is.
// Served over a real ADS stream to reviews-v1's sidecar.
func TestJWKSFetchModes(t *testing.T) {
	set := `{"keys":[]}`
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(set)) }))
	t.Cleanup(keys.Close)
	for _, tc := range []struct {
		mode                     model.JWKSFetchMode
		entry, svc, wrong, known string // the cluster each rule's keys are fetched through, "" for inline
	}{
		{model.JWKSHybrid, "outbound|8080||jwks.example", "outbound|8080||keys.default.svc.cluster.local", "", ""},
		{model.JWKSEnvoy, "outbound|8080||jwks.example", "outbound|8080||keys.default.svc.cluster.local",
			"outbound|9999||keys.default.svc.cluster.local", "outbound|" + keys.URL[strings.LastIndex(keys.URL, ":")+1:] + "||127.0.0.1"},
		{model.JWKSIstiod, "", "", "", ""},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			w, _ := bookinfo(t)
			w.In.JWKSFetch = tc.mode
			if err := w.AddYAML([]byte(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: jwks, namespace: default}
spec:
  hosts: [jwks.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 198.18.250.1}]
---
apiVersion: v1
kind: Service
metadata: {name: keys, namespace: default}
spec:
  selector: {app: keys}
  ports: [{name: http, port: 8080}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - {issuer: https://entry.example, jwksUri: "http://jwks.example:8080/keys", timeout: 2s}
  - {issuer: https://svc.example, jwksUri: "http://keys.default.svc.cluster.local:8080/jwks"}
  - {issuer: https://wrong-port.example, jwksUri: "http://keys.default.svc.cluster.local:9999/jwks"}
  - {issuer: https://known.example, jwksUri: "` + keys.URL + `/keys"}
`)); err != nil {
				t.Fatal(err)
			}
			s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
			s.Update(model.Build(1, w.Input()), model.Change{Full: true})
			conn := startADS(t, s)
			ctx := waitCtx(t)
			c := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, "reviews-v1")}
			if err := c.Start(ctx, conn); err != nil {
				t.Fatal(err)
			}
			waitSynced(t, s, c.NodeID, "CDS", "EDS", "LDS")
			l := &listenerv3.Listener{}
			if err := c.Resource(resourcev3.ListenerType, VirtualInbound).UnmarshalTo(l); err != nil {
				t.Fatal(err)
			}
			ps := jwtProviders(t, l)
			for iss, want := range map[string]string{"https://entry.example": tc.entry, "https://svc.example": tc.svc,
				"https://wrong-port.example": tc.wrong, "https://known.example": tc.known} {
				p := ps[iss]
				if want == "" {
					if p.GetLocalJwks() == nil {
						t.Errorf("%s: %v; want the keys inline (pilot fetches them)", iss, p.GetJwksSourceSpecifier())
					}
					continue
				}
				hu := p.GetRemoteJwks().GetHttpUri()
				if hu.GetCluster() != want {
					t.Errorf("%s: %v; want remote_jwks through cluster %s", iss, p.GetJwksSourceSpecifier(), want)
					continue
				}
				if c.Resource(resourcev3.ClusterType, want) == nil && iss != "https://wrong-port.example" && iss != "https://known.example" {
					t.Errorf("%s: cluster %s is not served to the proxy", iss, want)
				}
				if d := p.GetRemoteJwks().GetCacheDuration().AsDuration(); d != 5*time.Minute {
					t.Errorf("%s: cache_duration %v, want 5m (istiod's)", iss, d)
				}
			}
			if tc.entry != "" {
				if d := ps["https://entry.example"].GetRemoteJwks().GetHttpUri().GetTimeout().AsDuration(); d != 2*time.Second {
					t.Errorf("timeout %v, want the rule's 2s", d)
				}
				if d := ps["https://svc.example"].GetRemoteJwks().GetHttpUri().GetTimeout().AsDuration(); d != 5*time.Second {
					t.Errorf("timeout %v, want the 5s default", d)
				}
			}
			if tc.known == "" && ps["https://known.example"].GetLocalJwks().GetInlineString() != set {
				t.Errorf("known host inline keys %q, want pilot's fetch %q", ps["https://known.example"].GetLocalJwks().GetInlineString(), set)
			}
		})
	}
}

func TestParseJWKSFetchMode(t *testing.T) {
	for in, want := range map[string]model.JWKSFetchMode{"": model.JWKSIstiod, "false": model.JWKSIstiod, "istiod": model.JWKSIstiod,
		"true": model.JWKSHybrid, "hybrid": model.JWKSHybrid, "Envoy": model.JWKSEnvoy} {
		if got, err := model.ParseJWKSFetchMode(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := model.ParseJWKSFetchMode("proxy"); err == nil || !strings.Contains(err.Error(), "istiod") {
		t.Errorf("proxy: %v; want an error naming the modes", err)
	}
}
