package rollout_test

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

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
