package jwtauthn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/protofields"
)

// Envoy's defaults for remote_jwks.
const (
	defaultCacheDuration  = 10 * time.Minute
	defaultFailedRefetch  = time.Second
	defaultRetryBase      = time.Second
	maxJWKSBytes          = 1 << 20
	refreshMarginFraction = 10 // refetch this fraction of cache_duration before it ends
)

// remote is a JWKS fetched over one of the proxy's clusters (remote_jwks),
// shared by every provider, in this and later configs of the proxy, that
// names the same URI, cluster and fetch settings (httpfilter.Keep): a config
// update keeps the keys and their refresh instead of fetching anew.
//
// The first fetch happens when a request first carries a token for it
// (with async_fetch: when the config is compiled); requests with a token
// wait for that fetch, and concurrent ones wait for the same fetch. Once
// keys are there they are refetched in the background before
// cache_duration runs out, and after a failed fetch every
// failed_refetch_duration; a failed refetch keeps the last good keys. While
// no fetch has ever succeeded a token cannot be verified (401, as in
// Envoy); a request without one does not need the keys and never waits.
type remote struct {
	uri, host, path string
	clusterName     string
	timeout         time.Duration // 0: no deadline
	cacheFor        time.Duration
	failedRefetch   time.Duration
	retries         int
	backoffBase     time.Duration
	backoffMax      time.Duration

	lookup atomic.Pointer[func(string) *cluster.Cluster] // the newest config's cluster lookup

	keys atomic.Pointer[jose.JSONWebKeySet] // the last good keys; nil until a fetch succeeds

	mu       sync.Mutex
	inflight chan struct{} // closed when the running fetch ends; nil when none runs
	timer    *time.Timer   // the next background fetch
	fetches  atomic.Int64  // fetches started, for tests and stats
}

// compileRemote checks a RemoteJwks and returns the proxy's shared fetcher for it.
func compileRemote(rj *jwtv3.RemoteJwks, f string, env httpfilter.Env) (*remote, error) {
	if err := protofields.Check(rj, f, "http_uri", "cache_duration", "async_fetch", "retry_policy"); err != nil {
		return nil, err
	}
	hu := rj.GetHttpUri()
	if hu == nil {
		return nil, fmt.Errorf("%s.http_uri: required", f)
	}
	if err := protofields.Check(hu, f+".http_uri", "uri", "cluster", "timeout"); err != nil {
		return nil, err
	}
	u, err := url.Parse(hu.GetUri())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s.http_uri.uri: %q is not an http or https URL", f, hu.GetUri())
	}
	if hu.GetCluster() == "" {
		return nil, fmt.Errorf("%s.http_uri.cluster: required (the cluster the JWKS is fetched through)", f)
	}
	if hu.GetTimeout() == nil {
		return nil, fmt.Errorf("%s.http_uri.timeout: required", f)
	}
	r := &remote{uri: hu.GetUri(), host: u.Host, path: u.RequestURI(), clusterName: hu.GetCluster(),
		timeout: hu.GetTimeout().AsDuration(), cacheFor: defaultCacheDuration, failedRefetch: defaultFailedRefetch}
	if r.timeout < 0 {
		return nil, fmt.Errorf("%s.http_uri.timeout: negative", f)
	}
	if d := rj.GetCacheDuration(); d != nil {
		if r.cacheFor = d.AsDuration(); r.cacheFor <= 0 {
			return nil, fmt.Errorf("%s.cache_duration: must be positive", f)
		}
	}
	af := rj.GetAsyncFetch()
	if af != nil {
		if err := protofields.Check(af, f+".async_fetch", "fast_listener", "failed_refetch_duration"); err != nil {
			return nil, err
		}
		if d := af.GetFailedRefetchDuration(); d != nil {
			if r.failedRefetch = d.AsDuration(); r.failedRefetch <= 0 {
				return nil, fmt.Errorf("%s.async_fetch.failed_refetch_duration: must be positive", f)
			}
		}
	}
	if rp := rj.GetRetryPolicy(); rp != nil {
		pf := f + ".retry_policy"
		if err := protofields.Check(rp, pf, "num_retries", "retry_back_off"); err != nil {
			return nil, err
		}
		r.retries, r.backoffBase = 1, defaultRetryBase // Envoy: one retry unless num_retries says otherwise
		if n := rp.GetNumRetries(); n != nil {
			r.retries = int(n.GetValue())
		}
		if b := rp.GetRetryBackOff(); b != nil {
			if err := protofields.Check(b, pf+".retry_back_off", "base_interval", "max_interval"); err != nil {
				return nil, err
			}
			if d := b.GetBaseInterval().AsDuration(); d > 0 {
				r.backoffBase = d
			}
			r.backoffMax = b.GetMaxInterval().AsDuration()
		}
		if r.backoffMax <= 0 {
			r.backoffMax = 10 * r.backoffBase
		}
	}
	key := fmt.Sprintf("jwt_authn|%s|%s|%v|%v|%v|%d|%v|%v", r.uri, r.clusterName, r.timeout, r.cacheFor, r.failedRefetch,
		r.retries, r.backoffBase, r.backoffMax)
	shared := httpfilter.Keep(env.Shared, key, func() *remote { return r })
	lookup := env.Cluster
	if lookup == nil {
		lookup = func(string) *cluster.Cluster { return nil }
	}
	shared.lookup.Store(&lookup)
	if af != nil {
		shared.start() // fetched now rather than by the first request
	}
	return shared, nil
}

// get returns the keys to verify a token with, waiting for the first fetch
// (started here when none has been) until it ends or done closes; nil when
// there are none.
func (r *remote) get(done <-chan struct{}) *jose.JSONWebKeySet {
	if k := r.keys.Load(); k != nil {
		return k
	}
	r.mu.Lock()
	ch := r.inflight
	if ch == nil {
		if r.timer != nil {
			// A fetch failed and the next is scheduled: refuse now rather
			// than make every request wait out a server that is down.
			r.mu.Unlock()
			return nil
		}
		ch = r.startLocked()
	}
	r.mu.Unlock()
	select {
	case <-ch:
	case <-done:
	}
	return r.keys.Load()
}

// start begins a fetch unless one runs or is scheduled.
func (r *remote) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight == nil && r.timer == nil {
		r.startLocked()
	}
}

func (r *remote) startLocked() chan struct{} {
	ch := make(chan struct{})
	r.inflight = ch
	r.fetches.Add(1)
	go r.run(ch)
	return ch
}

// run fetches once and schedules the next fetch: before the keys' cache
// duration ends after a success, failed_refetch_duration after a failure.
func (r *remote) run(ch chan struct{}) {
	set, err := r.fetch()
	next := r.failedRefetch
	if err == nil {
		r.keys.Store(set)
		next = r.cacheFor - min(r.cacheFor/refreshMarginFraction, max(r.timeout, time.Millisecond))
	}
	r.mu.Lock()
	r.inflight = nil
	// The timer holds the fetcher weakly: once no config refers to it, it
	// is collected and its refreshes stop.
	wp := weak.Make(r)
	r.timer = time.AfterFunc(next, func() {
		if r := wp.Value(); r != nil {
			r.mu.Lock()
			r.timer = nil
			if r.inflight == nil {
				r.startLocked()
			}
			r.mu.Unlock()
		}
	})
	r.mu.Unlock()
	close(ch)
}

// fetch gets and parses the JWKS, retrying as retry_policy says.
func (r *remote) fetch() (*jose.JSONWebKeySet, error) {
	var err error
	for attempt := 0; ; attempt++ {
		var set *jose.JSONWebKeySet
		if set, err = r.fetchOnce(); err == nil {
			return set, nil
		}
		if attempt >= r.retries {
			return nil, err
		}
		// Randomised truncated exponential backoff, as Envoy's.
		ceil := r.backoffBase << min(attempt, 30)
		if ceil > r.backoffMax || ceil <= 0 {
			ceil = r.backoffMax
		}
		time.Sleep(rand.N(ceil) + time.Millisecond)
	}
}

func (r *remote) fetchOnce() (*jose.JSONWebKeySet, error) {
	ctx := context.Background()
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	c := (*r.lookup.Load())(r.clusterName)
	if c == nil {
		return nil, fmt.Errorf("jwks %s: cluster %q is unknown", r.uri, r.clusterName)
	}
	h, err := c.Pick(0, false, nil, "")
	if err != nil {
		return nil, fmt.Errorf("jwks %s: cluster %q: %w", r.uri, r.clusterName, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.host+r.path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = r.host
	req.Header.Set("Accept", "application/json")
	// The cluster's pool and transport socket carry it: mesh mTLS to a mesh
	// Service, a DestinationRule's TLS origination to an external one.
	resp, err := c.RoundTrip(req, h)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", r.uri, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", r.uri, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks %s: %s", r.uri, resp.Status)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwks %s: larger than %d bytes", r.uri, maxJWKSBytes)
	}
	var probe struct {
		Keys json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &probe); err != nil || probe.Keys == nil {
		return nil, fmt.Errorf("jwks %s: not a JWKS (no keys member)", r.uri)
	}
	set := &jose.JSONWebKeySet{}
	if err := json.Unmarshal(body, set); err != nil {
		return nil, fmt.Errorf("jwks %s: not a JWKS: %w", r.uri, err)
	}
	return set, nil
}
