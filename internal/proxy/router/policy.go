package router

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// RetryPolicy says when and how often a failed upstream attempt is retried.
type RetryPolicy struct {
	NumRetries                                                         int
	PerTryTimeout                                                      time.Duration
	BaseInterval                                                       time.Duration
	MaxInterval                                                        time.Duration
	on5xx, gateway, connectFailure, reset, retriable4xx, refusedStream bool
	statuses                                                           map[int]bool
	grpc                                                               map[string]bool // grpc-status codes, by number
}

var grpcCodes = map[string]string{"cancelled": "1", "deadline-exceeded": "4", "resource-exhausted": "8", "internal": "13", "unavailable": "14"}

func compileRetry(rp *routev3.RetryPolicy, f string) (*RetryPolicy, error) {
	p := &RetryPolicy{NumRetries: 1, BaseInterval: 25 * time.Millisecond, statuses: map[int]bool{}, grpc: map[string]bool{}}
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = int(n.GetValue())
	}
	if d := rp.GetPerTryTimeout(); d != nil {
		p.PerTryTimeout = d.AsDuration()
	}
	if b := rp.GetRetryBackOff(); b != nil {
		p.BaseInterval = b.GetBaseInterval().AsDuration()
		if m := b.GetMaxInterval(); m != nil {
			p.MaxInterval = m.AsDuration()
		}
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = 10 * p.BaseInterval
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		p.statuses[int(c)] = true
	}
	for _, on := range strings.Split(rp.GetRetryOn(), ",") {
		switch on = strings.TrimSpace(on); on {
		case "":
		case "5xx":
			p.on5xx = true
		case "gateway-error":
			p.gateway = true
		case "connect-failure":
			p.connectFailure = true
		case "reset", "reset-before-request":
			p.reset = true
		case "retriable-4xx":
			p.retriable4xx = true
		case "refused-stream":
			p.refusedStream = true
		case "retriable-status-codes":
			// statuses already collected
		case "cancelled", "deadline-exceeded", "resource-exhausted", "internal", "unavailable":
			p.grpc[grpcCodes[on]] = true
		default:
			return nil, fmt.Errorf("%s.retry_on: condition %q is not supported", f, on)
		}
	}
	if !strings.Contains(rp.GetRetryOn(), "retriable-status-codes") {
		p.statuses = map[int]bool{}
	}
	for i, hp := range rp.GetRetryHostPredicate() {
		if hp.GetName() != "envoy.retry_host_predicates.previous_hosts" {
			return nil, fmt.Errorf("%s.retry_host_predicate[%d]: %q is not supported (the proxy always avoids the previous host)", f, i, hp.GetName())
		}
	}
	if rp.GetRetryPriority() != nil {
		return nil, fmt.Errorf("%s.retry_priority: not supported", f)
	}
	if rp.GetRateLimitedRetryBackOff() != nil || len(rp.GetRetriableHeaders()) > 0 || len(rp.GetRetriableRequestHeaders()) > 0 {
		return nil, fmt.Errorf("%s: rate_limited_retry_back_off, retriable_headers and retriable_request_headers are not supported", f)
	}
	return p, nil
}

// ShouldRetry decides from an attempt's outcome; connectErr marks a failure before any byte was sent.
func (p *RetryPolicy) ShouldRetry(resp *http.Response, err error, connectErr bool) bool {
	if err != nil {
		return p.reset || p.on5xx || p.gateway || (connectErr && p.connectFailure) || (connectErr && p.refusedStream)
	}
	c := resp.StatusCode
	switch {
	case p.statuses[c]:
		return true
	case c >= 500 && p.on5xx:
		return true
	case (c == 502 || c == 503 || c == 504) && p.gateway:
		return true
	case c == 409 && p.retriable4xx:
		return true
	}
	if len(p.grpc) > 0 {
		if gs := resp.Header.Get("Grpc-Status"); gs != "" && p.grpc[gs] {
			return true
		}
	}
	return false
}

// Backoff returns the wait before retry number n (1-based): jittered exponential, as Envoy does.
func (p *RetryPolicy) Backoff(n int, rnd uint64) time.Duration {
	d := p.BaseInterval << min(n-1, 16)
	if d > p.MaxInterval || d <= 0 {
		d = p.MaxInterval
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rnd % uint64(d))
}

type hashPolicy struct {
	header, query, cookie string
	sourceIP, terminal    bool
}

func compileHash(hp *routev3.RouteAction_HashPolicy, f string) (hashPolicy, error) {
	p := hashPolicy{terminal: hp.GetTerminal()}
	switch s := hp.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		if s.Header.GetRegexRewrite() != nil {
			return p, fmt.Errorf("%s.header.regex_rewrite: not supported", f)
		}
		p.header = http.CanonicalHeaderKey(s.Header.GetHeaderName())
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		p.query = s.QueryParameter.GetName()
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		p.sourceIP = s.ConnectionProperties.GetSourceIp()
	case *routev3.RouteAction_HashPolicy_Cookie_:
		if s.Cookie.GetTtl() != nil {
			return p, fmt.Errorf("%s.cookie.ttl: generating cookies is not supported", f)
		}
		p.cookie = s.Cookie.GetName()
	default:
		return p, fmt.Errorf("%s: %T is not supported", f, s)
	}
	return p, nil
}

func (p hashPolicy) value(r *http.Request, remote string) (string, bool) {
	switch {
	case p.header != "":
		v := r.Header.Get(p.header)
		return v, v != ""
	case p.query != "":
		v := r.URL.Query().Get(p.query)
		return v, v != ""
	case p.cookie != "":
		c, err := r.Cookie(p.cookie)
		if err != nil {
			return "", false
		}
		return c.Value, true
	case p.sourceIP:
		return hostOnly(remote), remote != ""
	}
	return "", false
}
