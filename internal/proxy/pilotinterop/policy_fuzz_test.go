package pilotinterop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	meshapi "istio.io/api/mesh/v1alpha1"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/agent"
	"mesh.dev/mesh/internal/proxy/config"
)

// FuzzPolicyTranslation: whatever AuthorizationPolicy and
// RequestAuthentication a user applies (any action, selector, rule, JWT
// rule), pilot builds config for reviews' sidecar and the ingress gateway
// without panicking or failing, and mesh-proxy accepts every listener of
// it: a NACK would leave the proxy on its old config (or, at start, with no
// inbound listener at all), so a policy pilot cannot make safe must become
// config that refuses, never config the proxy refuses. The policies are
// placed in reviews' namespace and in the root namespace, so they reach
// both proxies. Seeds: testdata/fuzz/FuzzPolicyTranslation.
func FuzzPolicyTranslation(f *testing.F) {
	for _, s := range [][2]string{
		{`{"rules":[{"from":[{"source":{"serviceAccounts":["default/bookinfo-productpage"]}}]}]}`, ``},
		{`{"action":"AUDIT","rules":[{"to":[{"operation":{"paths":["/audit/*"]}}]}]}`, ``},
		{`{"action":"DENY","rules":[{"to":[{"operation":{"ports":["9080"],"paths":["/a/{*}/b/{**}"]}}],"when":[{"key":"request.auth.claims[groups]","values":["x"]}]}]}`, `{"jwtRules":[{"issuer":"https://a.example","fromHeaders":[{"name":"x-jwt","prefix":"Bearer "}],"outputClaimToHeaders":[{"header":"x-sub","claim":"sub"}]}]}`},
		{`{"action":"CUSTOM","provider":{"name":"ext-grpc"},"rules":[{"to":[{"operation":{"paths":["/x"]}}]}]}`, ``},
		{`{"action":"CUSTOM","provider":{"name":"nope"},"rules":[{}]}`, `{"jwtRules":[{"issuer":"https://b.example","jwks":"{\"keys\":[]}","presence":"REQUIRED"}]}`},
		{`{"targetRefs":[{"group":"gateway.networking.k8s.io","kind":"Gateway","name":"bookinfo-gateway"}],"rules":[{"from":[{"source":{"requestPrincipals":["*"]}}]}]}`, `{"jwtRules":[{"issuer":"https://c.example","jwks":"not json"}]}`},
		{`{"selector":{"matchLabels":{"app":"reviews"}},"rules":[{"when":[{"key":"experimental.envoy.filters.network.x[y]","values":["v"]}]}]}`, `{"jwtRules":[{"issuer":"https://d.example","fromHeaders":[{"name":""}],"outputClaimToHeaders":[{"header":"","claim":""}]}]}`},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	// Keys for JWT rules without inline jwks, in place of those pilot would
	// fetch: the fuzzer must not make pilot fetch from addresses it makes
	// up. TestRequestAuthenticationJWT covers fetching.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Use: "sig"}}})
	fuzzJWKS := string(set)
	w, _ := world(f, "bookinfo-gateway.yaml")
	// CUSTOM policies naming ext-authz or ext-grpc get a provider pilot can use.
	w.In.Mesh = &meshapi.MeshConfig{ExtensionProviders: []*meshapi.MeshConfig_ExtensionProvider{
		{Name: "ext-authz", Provider: &meshapi.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{EnvoyExtAuthzHttp: &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{
			Service: "ratings.default.svc.cluster.local", Port: 9080, IncludeRequestHeadersInCheck: []string{"x-user"}, HeadersToUpstreamOnAllow: []string{"x-authz-*"}}}},
		{Name: "ext-grpc", Provider: &meshapi.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{
			Service: "details.default.svc.cluster.local", Port: 9080}}},
	}}
	base := w.Input()
	nodes := []string{w.PodProxy(model.SidecarProxy, "reviews-v1"),
		model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system")}
	f.Fuzz(func(t *testing.T, apJSON, raJSON []byte) {
		in := base
		in.AuthorizationPolicies = append([]*securityv1.AuthorizationPolicy(nil), base.AuthorizationPolicies...)
		in.RequestAuthentications = append([]*securityv1.RequestAuthentication(nil), base.RequestAuthentications...)
		apSpec := &securityapi.AuthorizationPolicy{}
		if len(apJSON) > 0 && protojson.Unmarshal(apJSON, apSpec) == nil {
			for _, ns := range []string{"default", "mesh-system"} {
				ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Namespace: ns, Generation: 1}}
				proto.Merge(&ap.Spec, apSpec)
				in.AuthorizationPolicies = append(in.AuthorizationPolicies, ap)
			}
		}
		raSpec := &securityapi.RequestAuthentication{}
		if len(raJSON) > 0 && protojson.Unmarshal(raJSON, raSpec) == nil {
			for _, jr := range raSpec.GetJwtRules() {
				if jr != nil && jr.GetJwks() == "" {
					jr.Jwks = fuzzJWKS
				}
			}
			for _, ns := range []string{"default", "mesh-system"} {
				ra := &securityv1.RequestAuthentication{ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Namespace: ns, Generation: 1}}
				proto.Merge(&ra.Spec, raSpec)
				in.RequestAuthentications = append(in.RequestAuthentications, ra)
			}
		}
		pc := xds.NewPushContext(model.Build(1, in))
		for _, node := range nodes {
			p, err := model.ParseNodeID(node)
			if err != nil {
				t.Fatal(err)
			}
			r, err := pc.Generate(p, &ca.SecretCache{CA: authority, TTL: time.Hour})
			if err != nil {
				t.Fatalf("pilot generate for %s: %v\npolicy %s\nrequest authentication %s", node, err, apJSON, raJSON)
			}
			px, err := agent.New(agent.Options{NodeID: node, ValidateOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{resourcev3.SecretType, resourcev3.ClusterType, resourcev3.ListenerType} {
				u := config.Update{TypeURL: typ, Version: "1", Replace: typ != resourcev3.SecretType}
				for _, res := range r.Items(typ) {
					a, err := anypb.New(res)
					if err != nil {
						t.Fatal(err)
					}
					u.Resources = append(u.Resources, a)
				}
				if err := px.Apply(u); err != nil {
					t.Fatalf("mesh-proxy (%s) NACKs pilot's %s: %v\npolicy %s\nrequest authentication %s", node, typ, err, apJSON, raJSON)
				}
			}
			px.Close()
		}
	})
}
