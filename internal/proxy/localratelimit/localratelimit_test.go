package localratelimit

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// What the filter cannot carry out is refused by name, never ignored.
func TestCompileRefusesWhatItCannotDo(t *testing.T) {
	tb := func(d time.Duration) *typev3.TokenBucket {
		return &typev3.TokenBucket{MaxTokens: 1, FillInterval: durationpb.New(d)}
	}
	cases := []struct {
		name     string
		c        *lrlv3.LocalRateLimit
		perRoute bool
		want     string
	}{
		{"per connection", &lrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(time.Second), LocalRateLimitPerDownstreamConnection: true}, false, "local_rate_limit_per_downstream_connection"},
		{"cluster-wide", &lrlv3.LocalRateLimit{StatPrefix: "x", LocalClusterRateLimit: &ratelimitv3.LocalClusterRateLimit{}}, false, "field local_cluster_rate_limit is not supported"},
		{"too fast a fill", &lrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(10 * time.Millisecond)}, false, "at least 50ms"},
		{"per route needs a bucket", &lrlv3.LocalRateLimit{StatPrefix: "x"}, true, "token_bucket: required in per-route config"},
		{"wildcard descriptor", &lrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(time.Second), Descriptors: []*ratelimitv3.LocalRateLimitDescriptor{
			{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "k"}}, TokenBucket: tb(time.Second)}}}, false, "wildcard entries"},
		{"descriptors without rate_limits", &lrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(time.Second), Descriptors: []*ratelimitv3.LocalRateLimitDescriptor{
			{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}}, TokenBucket: tb(time.Second)}}}, false, "need rate_limits"},
		{"descriptor interval not a multiple", &lrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(time.Second), Descriptors: []*ratelimitv3.LocalRateLimitDescriptor{
			{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "k", Value: "v"}}, TokenBucket: tb(1500 * time.Millisecond)}}}, false, "must be a multiple"},
	}
	for _, c := range cases {
		_, err := Compile(c.c, "lrl", c.perRoute)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error containing %q", c.name, err, c.want)
		}
	}
	ok := &lrlv3.LocalRateLimit{StatPrefix: "x", FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{}}}
	if _, err := Compile(ok, "lrl", false); err != nil {
		t.Errorf("HCM-level config without a bucket (routes give theirs): %v", err)
	}
}

// The bucket starts full, refuses when empty, and refills per fill_interval.
func TestBucket(t *testing.T) {
	b, err := newBucket(&typev3.TokenBucket{MaxTokens: 2, FillInterval: durationpb.New(time.Hour)}, "b")
	if err != nil {
		t.Fatal(err)
	}
	if !b.take() || !b.take() || b.take() {
		t.Fatal("a bucket of 2 must give 2 tokens, then refuse")
	}
	b.last = b.last.Add(-time.Hour) // one interval has passed
	if !b.take() || b.take() {
		t.Error("after one fill of tokens_per_fill 1: want one more token")
	}
	if l, r, reset := b.report(); l != 2 || r != 0 || reset < 3500 || reset > 3600 {
		t.Errorf("report: limit %d remaining %d reset %ds; want 2, 0, about 3600", l, r, reset)
	}
}
