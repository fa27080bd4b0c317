package pilotinterop

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/xds"
)

// TestRequestAuthenticationRemoteJWKS: with pilot in hybrid mode
// (PILOT_JWT_ENABLE_REMOTE_JWKS=hybrid), a jwksUri on a ServiceEntry host
// is fetched by mesh-proxy through the host's outbound cluster (here sent
// to a JWKS server on 127.0.0.7), not by pilot: the first token waits for
// that fetch and is accepted, a forged one gets 401, and the server sees
// the fetch with the URI's host. A jwksUri on a host the mesh does not
// know is still fetched by pilot and inlined.
func TestRequestAuthenticationRemoteJWKS(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forgedKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Use: "sig"}}})
	var fetches atomic.Int64
	var fetchHost atomic.Value
	ln, err := net.Listen("tcp", "127.0.0.7:0")
	if err != nil {
		t.Fatal(err)
	}
	remote := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/keys" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		fetchHost.Store(r.Host)
		w.Write(set)
	}))
	remote.Listener = ln
	remote.Start()
	defer remote.Close()
	byPilot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(set) }))
	defer byPilot.Close()

	w, _ := world(t)
	w.In.JWKSFetch = model.JWKSHybrid
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
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: https://remote.example
    jwksUri: http://jwks.example:8080/keys
  - issuer: https://fetched.example
    jwksUri: ` + byPilot.URL + `/keys
`)); err != nil {
		t.Fatal(err)
	}
	sign := func(k *rsa.PrivateKey, iss string) string {
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := josejwt.Signed(sg).Claims(map[string]any{"iss": iss, "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h := startInboundOpts(t, w, pushContext(w), "reviews-v1", authority, newApp(t), inboundOpts{
		endpoints: map[string]netip.AddrPort{xds.OutboundClusterName(8080, "", "jwks.example"): netip.MustParseAddrPort(ln.Addr().String())}})
	check := func(name, tok string, want int) {
		t.Helper()
		var hdr []string
		if tok != "" {
			hdr = []string{"Authorization", "Bearer " + tok}
		}
		code, err := h.callTo(t, netip.AddrPortFrom(h.podIP, 9080), "default", "bookinfo-productpage", "/reviews/0", hdr...)
		if err != nil || code != want {
			t.Errorf("%s: %d %v; want %d", name, code, err, want)
		}
	}
	check("no token", "", 200)
	if n := fetches.Load(); n != 0 {
		t.Errorf("the proxy fetched the JWKS %d times before any token came; want on demand", n)
	}
	check("token, keys fetched by the proxy", sign(key, "https://remote.example"), 200)
	check("forged token", sign(forgedKey, "https://remote.example"), 401)
	check("token, keys fetched by pilot", sign(key, "https://fetched.example"), 200)
	if n := fetches.Load(); n != 1 {
		t.Errorf("the JWKS server saw %d fetches, want 1 (the proxy's, cached)", n)
	}
	if got, _ := fetchHost.Load().(string); got != "jwks.example:8080" {
		t.Errorf("the fetch carried Host %q, want jwks.example:8080 (the jwksUri's)", got)
	}
}
