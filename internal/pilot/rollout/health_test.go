package rollout_test

import (
	"context"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mesh.dev/mesh/internal/pilot/rollout"
)

// traffic stands for the requests each bookinfo proxy sends to reviews
// between two looks at its metrics: every look, each proxy has sent ten
// more, answered as the route it holds (over its real ADS stream) makes
// them: subset v9 has no endpoints (every request a 503), v3 is slow
// (100ms; the others 10ms). The counters grow as a proxy's do.
type traffic struct {
	f     *fleet
	mu    sync.Mutex
	total map[string]rollout.Sample
}

func (tr *traffic) sample(_ context.Context, proxies []string, sc rollout.Scope) map[string]rollout.Sample {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if sc.Reporter != "source" || len(sc.Hosts) != 1 || sc.Hosts[0] != "reviews.default.svc.cluster.local" {
		tr.f.t.Errorf("a VirtualService for reviews measured with scope %+v, want reviews as the client reports it", sc)
	}
	out := map[string]rollout.Sample{}
	for _, id := range proxies {
		c := tr.f.clients[podOf(id)]
		if c == nil {
			continue
		}
		add := rollout.Sample{Requests: 10}
		lat := 10.0
		switch subset(c) {
		case "v9":
			add.Failed = 10
		case "v3":
			lat = 100
		}
		for _, le := range []float64{5, 25, 50, 250, math.Inf(1)} {
			n := 0.0
			if lat <= le {
				n = 10
			}
			add.Buckets = append(add.Buckets, rollout.Bucket{LE: le, Count: n})
		}
		tr.total[id] = tr.total[id].Add(add)
		out[id] = tr.total[id]
	}
	return out
}

func gatedFleet(t *testing.T) *fleet {
	f := newFleet(t)
	tr := &traffic{f: f, total: map[string]rollout.Sample{}}
	f.mgr.Health, f.mgr.CheckEvery = tr.sample, 10*time.Second
	released := map[string]string{}
	for n := range f.clients {
		if !strings.HasPrefix(n, "cart") {
			released[n] = "v1"
		}
	}
	f.waitSubsets("start", released)
	return f
}

const gates = `rollout.mesh.io/stages: "50,100", rollout.mesh.io/interval: 60s, rollout.mesh.io/max-5xx-ratio: "0.02", rollout.mesh.io/max-latency-increase: "1.5"`

// waitStaged waits until the staged proxies hold the candidate's subset.
func (f *fleet) waitStaged(sub string) rollout.Status {
	f.t.Helper()
	st := f.status(vsID)
	want := map[string]string{}
	for _, id := range st.Staged {
		want[podOf(id)] = sub
	}
	f.waitSubsets("staged", want)
	return st
}

func (f *fleet) waitPhase(p rollout.Phase) rollout.Status {
	f.t.Helper()
	ctx := f.ctx()
	for {
		st := f.status(vsID)
		if st.Phase == p {
			return st
		}
		select {
		case <-ctx.Done():
			f.t.Fatalf("rollout never %s: %+v", p, st)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A change routing reviews to a subset with no endpoints fails the
// staged proxies' requests; the first health check after the stage began
// rolls it back for everyone, well within the interval, with the figures.
func TestFailingHealthGateRollsBack(t *testing.T) {
	f := gatedFleet(t)
	f.apply(reviewsVS("v9", gates))
	f.waitStaged("v9")
	f.clock.Advance(0) // the stage's first reading: its zero
	f.clock.Advance(10 * time.Second)
	st := f.waitPhase(rollout.RolledBack)
	for _, want := range []string{"health gate failed at stage 1", "failed-request ratio 1.000 over rollout.mesh.io/max-5xx-ratio 0.02", "30 of 30 requests", "released: 30 requests, 0 failed"} {
		if !strings.Contains(st.Reason, want) {
			t.Errorf("rollback reason lacks %q: %s", want, st.Reason)
		}
	}
	all := map[string]string{}
	for n := range f.clients {
		if !strings.HasPrefix(n, "cart") {
			all[n] = "v1"
		}
	}
	f.waitSubsets("rolled back", all)
}

// A slower candidate (p90 ten times the released version's) fails the
// latency gate; a healthy one passes both and is promoted when the
// interval ends, the figures in its history.
func TestLatencyGateAndHealthyPromotion(t *testing.T) {
	f := gatedFleet(t)
	f.apply(reviewsVS("v3", gates))
	f.waitStaged("v3")
	f.clock.Advance(0)
	f.clock.Advance(10 * time.Second)
	st := f.waitPhase(rollout.RolledBack)
	if !strings.Contains(st.Reason, "p90 latency") || !strings.Contains(st.Reason, "max-latency-increase") {
		t.Errorf("slow candidate rolled back for %q, want the latency gate", st.Reason)
	}

	f.apply(reviewsVS("v2", gates))
	f.waitStaged("v2")
	f.clock.Advance(0)
	for i := 0; i < 5; i++ {
		f.clock.Advance(10 * time.Second)
	}
	st = f.status(vsID)
	if st.Phase != rollout.Progressing || st.Health == nil || st.Health.Candidate.Requests != 150 || st.Health.Candidate.FailedRatio != 0 {
		t.Fatalf("healthy candidate at 50s: %+v (health %+v), want Progressing with 150 requests on the staged proxies, none failed", st, st.Health)
	}
	f.clock.Advance(10 * time.Second)
	f.waitPhase(rollout.Released)
	h, err := f.mgr.History(vsID)
	if err != nil {
		t.Fatal(err)
	}
	if last := h[len(h)-1]; last.Reason != "Promoted" || !strings.Contains(last.Message, "passed its health gates") {
		t.Errorf("last step %+v, want Promoted after passing its gates", last)
	}
}

// The figures pilot reads off a proxy's real metrics endpoint: a
// Prometheus text page with Istio's duration buckets (the +Inf bucket
// among them, as every exposition has it), scraped over a socket. 95 of
// 100 requests to reviews took 3ms and 5 took 200ms, so the p90 lies in
// the (1ms, 5ms] bucket; a second series of reviews' (another response
// code) adds to it, and another service's slow requests do not count.
func TestP90FromAProxysMetricsPage(t *testing.T) {
	reg := prometheus.NewRegistry()
	istioBuckets := []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}
	series := func(svc, code string) (prometheus.Counter, prometheus.Histogram) {
		l := prometheus.Labels{"reporter": "source", "destination_service": svc, "response_code": code}
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "istio_requests_total", ConstLabels: l})
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds", Buckets: istioBuckets, ConstLabels: l})
		reg.MustRegister(c, h)
		return c, h
	}
	observe := func(c prometheus.Counter, h prometheus.Histogram, n int, ms float64) {
		for range n {
			c.Inc()
			h.Observe(ms)
		}
	}
	ok, okDur := series("reviews.default.svc.cluster.local", "200")
	observe(ok, okDur, 90, 3)
	observe(ok, okDur, 5, 200)
	failed, failedDur := series("reviews.default.svc.cluster.local", "503")
	observe(failed, failedDur, 5, 3)
	other, otherDur := series("ratings.default.svc.cluster.local", "200")
	observe(other, otherDur, 100, 2000)

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	sp := &rollout.ScrapeProxies{Addr: func(string) string { return strings.TrimPrefix(srv.URL, "http://") }}
	sc := rollout.Scope{Reporter: "source", Hosts: []string{"reviews.default.svc.cluster.local"}}
	got := sp.Sample(context.Background(), []string{"sidecar~127.0.0.1~productpage.default~default.svc.cluster.local"}, sc)
	s, found := got["sidecar~127.0.0.1~productpage.default~default.svc.cluster.local"]
	if !found {
		t.Fatalf("the proxy's metrics page was not read: %v", got)
	}
	if s.Requests != 100 || s.Failed != 5 {
		t.Errorf("read %v requests, %v failed; want 100 and 5", s.Requests, s.Failed)
	}
	p90, known := s.Quantile(0.9)
	if !known || p90 <= 1 || p90 > 5 {
		t.Errorf("p90 %vms (known %v), want within Istio's (1ms, 5ms] bucket: 95 of the 100 requests took 3ms", p90, known)
	}
}
