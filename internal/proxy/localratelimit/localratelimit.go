// Package localratelimit is the envoy.filters.http.local_ratelimit HTTP
// filter: token buckets kept in the proxy (shared by all its connections),
// at the HCM level and per route, with descriptors picked by the request.
package localratelimit

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/protofields"
	"mesh.dev/mesh/internal/proxy/router"
	"mesh.dev/mesh/internal/proxy/runtime"
)

// TypeURL is LocalRateLimit's type URL, both as the filter's config and per route.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"

// Factory registers the local rate limit filter.
func Factory() httpfilter.Factory {
	return httpfilter.Factory{
		Name:          "envoy.filters.http.local_ratelimit",
		ConfigTypes:   []string{TypeURL},
		PerRouteTypes: []string{TypeURL},
		New: func(c httpfilter.Config) (httpfilter.Filter, error) {
			l, err := compileAny(c.Any, c.Field, false)
			if err != nil {
				return nil, err
			}
			f := &filter{own: l, rt: c.Env.Runtime, counter: c.Env.Counter}
			f.register(l)
			return f, nil
		},
		NewPerRoute: func(a *anypb.Any, field string) (any, error) { return compileAny(a, field, true) },
	}
}

func compileAny(a *anypb.Any, field string, perRoute bool) (*Limiter, error) {
	c := &lrlv3.LocalRateLimit{}
	if err := a.UnmarshalTo(c); err != nil {
		return nil, fmt.Errorf("%s: want LocalRateLimit: %w", field, err)
	}
	return Compile(c, field, perRoute)
}

// Limiter is a compiled LocalRateLimit with its buckets.
type Limiter struct {
	statPrefix       string
	status           int
	bucket           *bucket // nil: no default bucket (only descriptors limit)
	enabled          runtime.Fraction
	enforced         runtime.Fraction
	notEnforcedHdrs  router.HeaderOps
	responseHdrs     router.HeaderOps
	descriptors      []descriptor
	rateLimits       []rateLimit
	xHeaders         bool
	alwaysDefault    bool
	retryAfterHeader bool
	stats            *stats // set when a filter instance registers its counters; per-route limiters share the filter's
}

type stats struct {
	enabled, enforced, rateLimited, ok *atomic.Int64
}

type descriptor struct {
	entries []entry
	bucket  *bucket
	shadow  bool
}

type entry struct{ key, value string }

// Compile compiles a LocalRateLimit; what the proxy cannot carry out is refused by name.
func Compile(c *lrlv3.LocalRateLimit, f string, perRoute bool) (*Limiter, error) {
	if err := c.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	// stage selects route rate_limits, which the router refuses; it has nothing to select here.
	if err := protofields.Check(c, f, "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
		"request_headers_to_add_when_not_enforced", "response_headers_to_add", "descriptors", "stage",
		"local_rate_limit_per_downstream_connection", "enable_x_ratelimit_headers", "always_consume_default_token_bucket",
		"rate_limits", "enable_retry_after_header"); err != nil {
		return nil, err
	}
	if c.GetLocalRateLimitPerDownstreamConnection() {
		return nil, fmt.Errorf("%s.local_rate_limit_per_downstream_connection: per-connection buckets are not supported; buckets are shared by all connections (false)", f)
	}
	l := &Limiter{statPrefix: c.GetStatPrefix(), status: http.StatusTooManyRequests,
		enabled:          runtime.CompileFraction(c.GetFilterEnabled(), 0),
		enforced:         runtime.CompileFraction(c.GetFilterEnforced(), 0),
		xHeaders:         c.GetEnableXRatelimitHeaders() == ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		alwaysDefault:    c.GetAlwaysConsumeDefaultTokenBucket() == nil || c.GetAlwaysConsumeDefaultTokenBucket().GetValue(),
		retryAfterHeader: c.GetEnableRetryAfterHeader()}
	if s := c.GetStatus(); s != nil && s.GetCode() >= 400 {
		l.status = int(s.GetCode()) // Envoy: below 400 means 429
	}
	var err error
	if tb := c.GetTokenBucket(); tb != nil {
		if l.bucket, err = newBucket(tb, f+".token_bucket"); err != nil {
			return nil, err
		}
	} else if perRoute {
		return nil, fmt.Errorf("%s.token_bucket: required in per-route config", f)
	}
	if l.notEnforcedHdrs, err = router.CompileHeaderOps(c.GetRequestHeadersToAddWhenNotEnforced(), nil, f+".request_headers_to_add_when_not_enforced"); err != nil {
		return nil, err
	}
	if l.responseHdrs, err = router.CompileHeaderOps(c.GetResponseHeadersToAdd(), nil, f+".response_headers"); err != nil {
		return nil, err
	}
	for i, d := range c.GetDescriptors() {
		df := fmt.Sprintf("%s.descriptors[%d]", f, i)
		cd := descriptor{shadow: d.GetShadowMode()}
		for j, e := range d.GetEntries() {
			if e.GetValue() == "" {
				return nil, fmt.Errorf("%s.entries[%d] (%s): wildcard entries (no value) are not supported", df, j, e.GetKey())
			}
			cd.entries = append(cd.entries, entry{e.GetKey(), e.GetValue()})
		}
		if cd.bucket, err = newBucket(d.GetTokenBucket(), df+".token_bucket"); err != nil {
			return nil, err
		}
		if l.bucket != nil && cd.bucket.interval%l.bucket.interval != 0 {
			return nil, fmt.Errorf("%s.token_bucket.fill_interval %v: must be a multiple of the filter's fill_interval %v (as Envoy requires)", df, cd.bucket.interval, l.bucket.interval)
		}
		l.descriptors = append(l.descriptors, cd)
	}
	for i, rl := range c.GetRateLimits() {
		r, err := compileRateLimit(rl, fmt.Sprintf("%s.rate_limits[%d]", f, i))
		if err != nil {
			return nil, err
		}
		l.rateLimits = append(l.rateLimits, r)
	}
	if len(l.descriptors) > 0 && len(l.rateLimits) == 0 {
		// Envoy takes descriptors from the route's rate_limits, which mesh-proxy's router refuses; without
		// rate_limits here no request would ever carry one, and the descriptors would be ignored.
		return nil, fmt.Errorf("%s.descriptors: need rate_limits in this config to produce request descriptors (route and virtual host rate_limits are not supported)", f)
	}
	return l, nil
}

// filter runs the HCM's limiter, or the route's in its place.
type filter struct {
	own     *Limiter
	rt      *runtime.Runtime
	counter func(string) *atomic.Int64
	mu      sync.Mutex
}

// register gives a limiter the counters named by its stat_prefix, as Envoy
// keeps them: <stat_prefix>.http_local_rate_limit.{enabled,enforced,rate_limited,ok}.
func (f *filter) register(l *Limiter) *stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := l.statPrefix + ".http_local_rate_limit."
	st := &stats{enabled: f.counter(p + "enabled"), enforced: f.counter(p + "enforced"), rateLimited: f.counter(p + "rate_limited"), ok: f.counter(p + "ok")}
	if l == f.own {
		l.stats = st
	}
	return st
}

func (f *filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	l := f.own
	st := l.stats
	if pr, ok := s.PerRoute().(*Limiter); ok {
		l = pr // Envoy: the route's LocalRateLimit replaces the filter's
		st = f.routeStats(pr)
	}
	if !f.rt.Enabled(&l.enabled) {
		return httpfilter.Continue
	}
	st.enabled.Add(1)
	allowed, b := l.allowed(s)
	if b != nil && l.xHeaders {
		limit, remaining, reset := b.report()
		s.AddResponseHeader("X-Ratelimit-Limit", strconv.FormatInt(limit, 10))
		s.AddResponseHeader("X-Ratelimit-Remaining", strconv.FormatInt(remaining, 10))
		s.AddResponseHeader("X-Ratelimit-Reset", strconv.FormatInt(reset, 10))
	}
	if allowed {
		st.ok.Add(1)
		return httpfilter.Continue
	}
	st.rateLimited.Add(1)
	if !f.rt.Enabled(&l.enforced) {
		if !l.notEnforcedHdrs.Empty() {
			l.notEnforcedHdrs.Apply(s.Request.Header, vars(s))
		}
		return httpfilter.Continue
	}
	st.enforced.Add(1)
	var h http.Header
	if !l.responseHdrs.Empty() {
		h = http.Header{}
		l.responseHdrs.Apply(h, vars(s))
	}
	if l.retryAfterHeader && l.status == http.StatusTooManyRequests && b != nil {
		if _, set := h["Retry-After"]; !set {
			if h == nil {
				h = http.Header{}
			}
			h.Set("Retry-After", strconv.FormatInt(max(b.untilNext(), 1), 10))
		}
	}
	return s.SendLocalReply(l.status, h, "local_rate_limited", "RL")
}

// routeStats are a per-route limiter's counters, made once per limiter (per-route limiters are compiled without a filter).
func (f *filter) routeStats(l *Limiter) *stats {
	f.mu.Lock()
	st := l.stats
	f.mu.Unlock()
	if st != nil {
		return st
	}
	st = f.register(l)
	f.mu.Lock()
	if l.stats == nil {
		l.stats = st
	}
	st = l.stats
	f.mu.Unlock()
	return st
}

func vars(s *httpfilter.Stream) *router.Vars {
	return &router.Vars{Remote: s.Peer.Remote.String(), Local: s.Peer.Local.String(), Protocol: s.Request.Proto, Req: s.Request.Header}
}

// allowed takes a token from every bucket that applies (matched descriptors,
// then the default bucket); it returns the bucket closest to its limit, for
// the x-ratelimit headers.
func (l *Limiter) allowed(s *httpfilter.Stream) (bool, *bucket) {
	var closest *bucket
	matched := false
	for i := range l.rateLimits {
		d := l.match(&l.rateLimits[i], s)
		if d == nil {
			continue
		}
		matched = true
		ok := d.bucket.take()
		closest = d.bucket
		if !ok && !d.shadow {
			return false, d.bucket
		}
	}
	if l.bucket != nil && (!matched || l.alwaysDefault) {
		ok := l.bucket.take()
		if closest == nil || l.bucket.remainingRatio() < closest.remainingRatio() {
			closest = l.bucket
		}
		if !ok {
			return false, l.bucket
		}
	}
	return true, closest
}

// match builds the request's descriptor for one rate_limits entry and finds the configured descriptor equal to it.
func (l *Limiter) match(rl *rateLimit, s *httpfilter.Stream) *descriptor {
	var buf [8]entry
	got := buf[:0]
	for _, a := range rl.actions {
		e, ok, skip := a.entry(s)
		if skip {
			continue
		}
		if !ok {
			return nil // an action without a value drops the whole descriptor, as in Envoy
		}
		got = append(got, e)
	}
	if len(got) == 0 {
		return nil
	}
	for i := range l.descriptors {
		d := &l.descriptors[i]
		if len(d.entries) != len(got) {
			continue
		}
		same := true
		for j := range got {
			if d.entries[j] != got[j] {
				same = false
				break
			}
		}
		if same {
			return d
		}
	}
	return nil
}

type rateLimit struct {
	actions []action
}

type action struct {
	kind         int
	key, value   string
	header       string
	skipIfAbsent bool
	headers      []*router.HeaderMatcher
	expectMatch  bool
	defaultValue string
}

const (
	actGeneric = iota
	actRequestHeader
	actRemoteAddress
	actHeaderValueMatch
	actDestinationCluster
)

func compileRateLimit(rl *routev3.RateLimit, f string) (rateLimit, error) {
	// Envoy's local rate limit ignores stage, disable_key and limit in its own rate_limits; refuse them rather than ignore.
	if err := protofields.Check(rl, f, "actions"); err != nil {
		return rateLimit{}, err
	}
	var r rateLimit
	for i, a := range rl.GetActions() {
		af := fmt.Sprintf("%s.actions[%d]", f, i)
		var ca action
		switch x := a.GetActionSpecifier().(type) {
		case *routev3.RateLimit_Action_GenericKey_:
			ca = action{kind: actGeneric, key: x.GenericKey.GetDescriptorKey(), value: x.GenericKey.GetDescriptorValue()}
			if ca.key == "" {
				ca.key = "generic_key"
			}
		case *routev3.RateLimit_Action_RequestHeaders_:
			ca = action{kind: actRequestHeader, key: x.RequestHeaders.GetDescriptorKey(), header: http.CanonicalHeaderKey(x.RequestHeaders.GetHeaderName()),
				skipIfAbsent: x.RequestHeaders.GetSkipIfAbsent()}
			if n := x.RequestHeaders.GetHeaderName(); n == ":authority" || n == "host" {
				ca.header = "Host"
			} else if len(n) > 0 && n[0] == ':' && n != ":path" && n != ":method" {
				return r, fmt.Errorf("%s.request_headers.header_name %q: pseudo-headers other than :authority, :path and :method are not supported", af, n)
			} else if n == ":path" || n == ":method" {
				ca.header = n
			}
		case *routev3.RateLimit_Action_RemoteAddress_:
			ca = action{kind: actRemoteAddress, key: "remote_address"}
		case *routev3.RateLimit_Action_DestinationCluster_:
			ca = action{kind: actDestinationCluster, key: "destination_cluster"}
		case *routev3.RateLimit_Action_HeaderValueMatch_:
			hv := x.HeaderValueMatch
			ca = action{kind: actHeaderValueMatch, key: hv.GetDescriptorKey(), value: hv.GetDescriptorValue(), defaultValue: hv.GetDefaultValue(),
				expectMatch: hv.GetExpectMatch() == nil || hv.GetExpectMatch().GetValue()}
			if ca.key == "" {
				ca.key = "header_match"
			}
			for j, h := range hv.GetHeaders() {
				hm, err := router.CompileHeaderMatcher(h, fmt.Sprintf("%s.header_value_match.headers[%d]", af, j))
				if err != nil {
					return r, err
				}
				ca.headers = append(ca.headers, hm)
			}
		default:
			return r, fmt.Errorf("%s: %T is not supported (use generic_key, request_headers, remote_address, destination_cluster or header_value_match)", af, x)
		}
		r.actions = append(r.actions, ca)
	}
	return r, nil
}

// entry is the descriptor entry an action gives for a request; ok false
// drops the descriptor, skip leaves this action out of it.
func (a *action) entry(s *httpfilter.Stream) (e entry, ok, skip bool) {
	r := s.Request
	switch a.kind {
	case actGeneric:
		return entry{a.key, a.value}, true, false
	case actRequestHeader:
		var v string
		switch a.header {
		case "Host":
			v = r.Host
		case ":path":
			v = r.URL.RequestURI()
		case ":method":
			v = r.Method
		default:
			vs := r.Header[a.header]
			if len(vs) == 0 {
				return e, false, a.skipIfAbsent
			}
			v = vs[0]
		}
		if v == "" {
			return e, false, a.skipIfAbsent
		}
		return entry{a.key, v}, true, false
	case actRemoteAddress:
		if !s.Peer.Remote.IsValid() {
			return e, false, false
		}
		return entry{a.key, s.Peer.Remote.Addr().Unmap().String()}, true, false
	case actDestinationCluster:
		switch {
		case s.Weighted != nil:
			return entry{a.key, s.Weighted.Name}, true, false
		case s.Route != nil && s.Route.Cluster != "":
			return entry{a.key, s.Route.Cluster}, true, false
		}
		return e, false, false
	case actHeaderValueMatch:
		all := true
		for _, hm := range a.headers {
			if !hm.Match(r.Header) {
				all = false
				break
			}
		}
		if all == a.expectMatch {
			return entry{a.key, a.value}, true, false
		}
		if a.defaultValue != "" {
			return entry{a.key, a.defaultValue}, true, false
		}
		return e, false, false
	}
	return e, false, false
}

// bucket is a token bucket: max tokens, refilled by tokens_per_fill every fill_interval, starting full.
type bucket struct {
	mu       sync.Mutex
	max      int64
	perFill  int64
	interval time.Duration
	tokens   int64
	last     time.Time // the last fill boundary
}

func newBucket(tb *typev3.TokenBucket, f string) (*bucket, error) {
	if tb == nil {
		return nil, fmt.Errorf("%s: required", f)
	}
	b := &bucket{max: int64(tb.GetMaxTokens()), perFill: 1, interval: tb.GetFillInterval().AsDuration(), last: time.Now()}
	if tb.GetTokensPerFill() != nil {
		b.perFill = int64(tb.GetTokensPerFill().GetValue())
	}
	if b.interval < 50*time.Millisecond {
		return nil, fmt.Errorf("%s.fill_interval %v: must be at least 50ms (as Envoy requires)", f, b.interval)
	}
	b.tokens = b.max
	return b, nil
}

func (b *bucket) refill(now time.Time) {
	if n := int64(now.Sub(b.last) / b.interval); n > 0 {
		b.tokens = min(b.max, b.tokens+n*b.perFill)
		b.last = b.last.Add(time.Duration(n) * b.interval)
	}
}

func (b *bucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(time.Now())
	if b.tokens <= 0 {
		return false
	}
	b.tokens--
	return true
}

// report gives the x-ratelimit values: the bucket's size, what is left, and seconds to the next fill.
func (b *bucket) report() (limit, remaining, reset int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := b.last.Add(b.interval)
	return b.max, b.tokens, int64(math.Ceil(time.Until(next).Seconds()))
}

func (b *bucket) untilNext() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(math.Ceil(time.Until(b.last.Add(b.interval)).Seconds()))
}

func (b *bucket) remainingRatio() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.max == 0 {
		return 0
	}
	return float64(b.tokens) / float64(b.max)
}
