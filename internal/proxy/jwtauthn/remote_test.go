package jwtauthn

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/httpfilter"
)

// jwksServer serves a JWKS that the test may change, counts the fetches,
// and can be made to fail or to hold each fetch until released.
type jwksServer struct {
	srv     *httptest.Server
	addr    string
	mu      sync.Mutex
	body    string
	down    bool
	hits    atomic.Int64
	release chan struct{} // non-nil: each fetch waits for it to close
}

func newJWKSServer(t *testing.T, ip, body string) *jwksServer {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &jwksServer{body: body, addr: ln.Addr().String()}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, down, rel := s.body, s.down, s.release
		s.mu.Unlock()
		if rel != nil {
			<-rel
		}
		if down || r.URL.Path != "/keys" {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	s.srv.Listener = ln
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) set(body string, down bool) {
	s.mu.Lock()
	s.body, s.down = body, down
	s.mu.Unlock()
}

// staticCluster is a real cluster of the proxy with one endpoint at addr.
func staticCluster(t *testing.T, name, addr string) *cluster.Cluster {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c, err := cluster.Compile(&clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}},
			}}}},
		}}},
	}, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// remoteConfig is the config pilot sends in envoy/hybrid mode: the keys at
// uri, fetched through cluster "outbound|8080||jwks.example".
func remoteConfig(uri string, mod func(*jwtv3.RemoteJwks)) *jwtv3.JwtAuthentication {
	rj := &jwtv3.RemoteJwks{
		HttpUri: &corev3.HttpUri{Uri: uri, HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "outbound|8080||jwks.example"},
			Timeout: durationpb.New(2 * time.Second)},
		CacheDuration: durationpb.New(5 * time.Minute),
	}
	if mod != nil {
		mod(rj)
	}
	return istioStyle("", func(p *jwtv3.JwtProvider) {
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: rj}
	})
}

// proxyEnv is what a proxy's HCM gives the filter: its clusters by name and its Shared store.
func proxyEnv(clusters ...*cluster.Cluster) httpfilter.Env {
	byName := map[string]*cluster.Cluster{}
	for _, c := range clusters {
		byName[c.Name] = c
	}
	return httpfilter.Env{Shared: &httpfilter.Shared{}, Cluster: func(n string) *cluster.Cluster { return byName[n] }}
}

func bearer(tok string) *http.Request {
	r, _ := http.NewRequest("GET", "http://reviews/r", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func goodClaims() map[string]any {
	return map[string]any{"iss": "https://issuer.example", "sub": "alice", "aud": "reviews", "exp": time.Now().Add(time.Hour).Unix()}
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The keys are fetched over the named cluster (to 127.0.0.2, not the
// URI's host), a valid token is accepted once they are there, a token
// signed with a key the JWKS does not have is refused, and a request
// without a token needs no keys.
func TestRemoteJWKSFetchedThroughTheCluster(t *testing.T) {
	ss := newSigners(t)
	js := newJWKSServer(t, "127.0.0.2", jwks(t, ss))
	env := proxyEnv(staticCluster(t, "outbound|8080||jwks.example", js.addr))
	f, err := CompileWith(remoteConfig("http://jwks.example:8080/keys", nil), "jwt", env)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("GET", "http://reviews/r", nil)
	if _, code := run(t, f, r); code != 0 {
		t.Errorf("no token: %d, want the request to continue", code)
	}
	if n := js.hits.Load(); n != 0 {
		t.Errorf("a request without a token made %d fetches, want none", n)
	}
	for _, s := range ss {
		st, code := run(t, f, bearer(sign(t, s, goodClaims())))
		if code != 0 {
			t.Fatalf("valid %s token: %d", s.alg, code)
		}
		if a, _ := st.Meta().Get(AuthnNamespace).(map[string]any); a["request.auth.principal"] != "https://issuer.example/alice" {
			t.Errorf("%s: principal %v", s.alg, a["request.auth.principal"])
		}
	}
	if _, code := run(t, f, bearer(sign(t, signer{ss[0].alg, "nope", ss[0].key}, goodClaims()))); code != http.StatusUnauthorized {
		t.Errorf("unknown kid: %d, want 401", code)
	}
	forged := newSigners(t)
	if _, code := run(t, f, bearer(sign(t, forged[0], goodClaims()))); code != http.StatusUnauthorized {
		t.Errorf("a key not in the JWKS: %d, want 401", code)
	}
	if n := js.hits.Load(); n != 1 {
		t.Errorf("%d fetches within the cache duration, want 1", n)
	}
}

// A JWKS server that is down before the first fetch: a token is refused
// (401, as Envoy does while it has no keys), a request without one goes
// on; once the server is up, the refetch after failed_refetch_duration
// gets the keys and the token is accepted.
func TestRemoteJWKSDownBeforeTheFirstFetch(t *testing.T) {
	ss := newSigners(t)
	js := newJWKSServer(t, "127.0.0.3", jwks(t, ss))
	js.set(jwks(t, ss), true)
	env := proxyEnv(staticCluster(t, "outbound|8080||jwks.example", js.addr))
	f, err := CompileWith(remoteConfig("http://jwks.example:8080/keys", func(rj *jwtv3.RemoteJwks) {
		rj.AsyncFetch = &jwtv3.JwksAsyncFetch{FailedRefetchDuration: durationpb.New(50 * time.Millisecond)}
	}), "jwt", env)
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, ss[0], goodClaims())
	if _, code := run(t, f, bearer(tok)); code != http.StatusUnauthorized {
		t.Errorf("token while the JWKS server is down: %d, want 401", code)
	}
	r, _ := http.NewRequest("GET", "http://reviews/r", nil)
	if _, code := run(t, f, r); code != 0 {
		t.Errorf("no token while the JWKS server is down: %d, want the request to continue", code)
	}
	js.set(jwks(t, ss), false)
	waitFor(t, "the token to be accepted once the JWKS server is up", func() bool {
		_, code := run(t, f, bearer(tok))
		return code == 0
	})
}

// After a good fetch the server goes down: the refetches fail and the
// last good keys keep verifying tokens. When it is back with a rotated
// key, the refresh picks the new key up and the old one is refused.
func TestRemoteJWKSKeepsKeysAndPicksUpRotation(t *testing.T) {
	old, rotated := newSigners(t), newSigners(t)
	js := newJWKSServer(t, "127.0.0.4", jwks(t, old))
	env := proxyEnv(staticCluster(t, "outbound|8080||jwks.example", js.addr))
	f, err := CompileWith(remoteConfig("http://jwks.example:8080/keys", func(rj *jwtv3.RemoteJwks) {
		rj.CacheDuration = durationpb.New(100 * time.Millisecond)
		rj.AsyncFetch = &jwtv3.JwksAsyncFetch{FailedRefetchDuration: durationpb.New(20 * time.Millisecond)}
	}), "jwt", env)
	if err != nil {
		t.Fatal(err)
	}
	claims := goodClaims()
	if _, code := run(t, f, bearer(sign(t, old[0], claims))); code != 0 {
		t.Fatalf("valid token after the first fetch: %d", code)
	}
	js.set(jwks(t, old), true)
	failed := js.hits.Load()
	waitFor(t, "refetches to fail", func() bool { return js.hits.Load() >= failed+3 })
	claims["sub"] = "bob" // a new token: not in the verified-token cache
	if _, code := run(t, f, bearer(sign(t, old[2], claims))); code != 0 {
		t.Errorf("token after failed refetches: %d, want the last good keys to verify it", code)
	}
	js.set(jwks(t, rotated), false)
	n := 0
	waitFor(t, "the rotated key to be picked up", func() bool {
		n++
		c := goodClaims()
		c["sub"] = "carol" + strconv.Itoa(n)
		_, code := run(t, f, bearer(sign(t, rotated[0], c)))
		return code == 0
	})
	claims["sub"] = "dave"
	if _, code := run(t, f, bearer(sign(t, old[0], claims))); code != http.StatusUnauthorized {
		t.Errorf("a token of the rotated-out key: %d, want 401", code)
	}
}

// N requests with tokens arrive together before any keys are there: one
// fetch serves them all, and all are accepted.
func TestRemoteJWKSConcurrentFirstRequestsFetchOnce(t *testing.T) {
	ss := newSigners(t)
	js := newJWKSServer(t, "127.0.0.5", jwks(t, ss))
	js.release = make(chan struct{})
	env := proxyEnv(staticCluster(t, "outbound|8080||jwks.example", js.addr))
	f, err := CompileWith(remoteConfig("http://jwks.example:8080/keys", nil), "jwt", env)
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	toks := make([]string, n)
	for i := range toks {
		c := goodClaims()
		c["sub"] = "user" + strconv.Itoa(i)
		toks[i] = sign(t, ss[i%len(ss)], c)
	}
	codes := make(chan int, n)
	for _, tok := range toks {
		go func() {
			_, code := run(t, f, bearer(tok))
			codes <- code
		}()
	}
	waitFor(t, "the first fetch to reach the server", func() bool { return js.hits.Load() > 0 })
	time.Sleep(50 * time.Millisecond) // let the other requests pile up behind it
	close(js.release)
	for range n {
		if code := <-codes; code != 0 {
			t.Errorf("a request waiting for the first fetch: %d", code)
		}
	}
	if h := js.hits.Load(); h != 1 {
		t.Errorf("%d concurrent first requests made %d fetches, want 1", n, h)
	}
}

// A new config of the same proxy with the same provider keeps the fetched
// keys (one fetch), as a config push must not make tokens wait or fail.
func TestRemoteJWKSKeptAcrossConfigs(t *testing.T) {
	ss := newSigners(t)
	js := newJWKSServer(t, "127.0.0.6", jwks(t, ss))
	env := proxyEnv(staticCluster(t, "outbound|8080||jwks.example", js.addr))
	cfg := remoteConfig("http://jwks.example:8080/keys", nil)
	f1, err := CompileWith(cfg, "jwt", env)
	if err != nil {
		t.Fatal(err)
	}
	if _, code := run(t, f1, bearer(sign(t, ss[0], goodClaims()))); code != 0 {
		t.Fatalf("first config: %d", code)
	}
	js.set(jwks(t, ss), true)
	f2, err := CompileWith(cfg, "jwt", env)
	if err != nil {
		t.Fatal(err)
	}
	if _, code := run(t, f2, bearer(sign(t, ss[1], goodClaims()))); code != 0 {
		t.Errorf("second config, JWKS server down: %d, want the keys kept", code)
	}
	if h := js.hits.Load(); h != 1 {
		t.Errorf("%d fetches for two configs, want 1", h)
	}
}

func TestRemoteJWKSRefusedConfig(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*jwtv3.RemoteJwks)
		want string
	}{
		{func(rj *jwtv3.RemoteJwks) { rj.HttpUri = nil }, "http_uri: required"},
		{func(rj *jwtv3.RemoteJwks) { rj.HttpUri.HttpUpstreamType = nil }, "http_uri.cluster: required"},
		{func(rj *jwtv3.RemoteJwks) { rj.HttpUri.Timeout = nil }, "http_uri.timeout: required"},
		{func(rj *jwtv3.RemoteJwks) { rj.HttpUri.Uri = "ftp://x/keys" }, "http_uri.uri"},
		{func(rj *jwtv3.RemoteJwks) { rj.RetryPolicy = &corev3.RetryPolicy{RetryOn: "5xx"} }, "retry_on"},
		{func(rj *jwtv3.RemoteJwks) { rj.CacheDuration = durationpb.New(0) }, "cache_duration"},
	} {
		_, err := CompileWith(remoteConfig("http://jwks.example:8080/keys", tc.mod), "jwt", proxyEnv())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v; want an error naming %q", err, tc.want)
		}
	}
	ok := func(rj *jwtv3.RemoteJwks) {
		rj.RetryPolicy = &corev3.RetryPolicy{NumRetries: wrapperspb.UInt32(2),
			RetryBackOff: &corev3.BackoffStrategy{BaseInterval: durationpb.New(time.Millisecond)}}
	}
	if _, err := CompileWith(remoteConfig("http://jwks.example:8080/keys", ok), "jwt", proxyEnv()); err != nil {
		t.Errorf("retry_policy with num_retries and retry_back_off: %v", err)
	}
}

// With retry_policy a failed fetch is retried within the same fetch: a
// server that fails once still yields keys for the first token.
func TestRemoteJWKSRetryPolicy(t *testing.T) {
	ss := newSigners(t)
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(jwks(t, ss)))
	}))
	t.Cleanup(srv.Close)
	env := proxyEnv(staticCluster(t, "outbound|8080||jwks.example", srv.Listener.Addr().String()))
	f, err := CompileWith(remoteConfig("http://jwks.example:8080/keys", func(rj *jwtv3.RemoteJwks) {
		rj.RetryPolicy = &corev3.RetryPolicy{NumRetries: wrapperspb.UInt32(2),
			RetryBackOff: &corev3.BackoffStrategy{BaseInterval: durationpb.New(time.Millisecond)}}
	}), "jwt", env)
	if err != nil {
		t.Fatal(err)
	}
	if _, code := run(t, f, bearer(sign(t, ss[0], goodClaims()))); code != 0 {
		t.Errorf("token with a JWKS server that failed once: %d, want accepted after the retry", code)
	}
}
