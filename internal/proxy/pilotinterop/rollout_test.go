package pilotinterop

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// TestRolloutHealthFromTheProxysMetrics: the health gates of a staged
// change read what a real mesh-proxy counts. A VirtualService sending
// reviews to a subset with no endpoints makes productpage's sidecar
// answer 503; pilot's sampler, scraping that proxy's /stats/prometheus,
// finds every request to reviews failed, with their durations, and none
// to a host the change does not name.
func TestRolloutHealthFromTheProxysMetrics(t *testing.T) {
	w, _ := world(t)
	if err := w.AddYAML([]byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v9, labels: {version: v9}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	client := injectAsDeployment(t, w, "productpage-v1", "productpage-v1")
	injectAsDeployment(t, w, "reviews-v1", "reviews-v1")
	pc := pushContext(w)
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server := startInboundTo(t, w, pc, "reviews-v1", authority, (&headerApp{}).start(t))
	go func() {
		for {
			select {
			case server.dst <- netip.AddrPortFrom(server.podIP, 9080):
			case <-t.Context().Done():
				return
			}
		}
	}()
	out := startOutbound(t, pc, client, authority, "reviews.default.svc.cluster.local:9080", server)
	var longest time.Duration // the slowest round trip the client saw: no request took the proxy longer
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest("GET", "http://"+out.addr+"/reviews/1", nil)
		req.Host = "reviews:9080"
		began := time.Now()
		resp, err := http.DefaultClient.Do(req)
		longest = max(longest, time.Since(began))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("to a subset with no endpoints: %d, want 503", resp.StatusCode)
		}
	}
	sampler := &rollout.ScrapeProxies{Addr: func(string) string { return out.proxy.AdminAddr() }}
	reviews := rollout.Scope{Reporter: "source", Hosts: []string{"reviews.default.svc.cluster.local"}}
	got := sampler.Sample(context.Background(), []string{client}, reviews)[client]
	if got.Requests != 20 || got.Failed != 20 {
		t.Errorf("sampled %v requests, %v failed; want 20 and 20", got.Requests, got.Failed)
	}
	// The p90 lies at or below the histogram bucket the slowest request
	// fell into (the first of Istio's bounds at or over it).
	bound := 0.0
	for _, b := range got.Buckets {
		if b.LE >= float64(longest.Microseconds())/1000 {
			bound = b.LE
			break
		}
	}
	if p90, ok := got.Quantile(0.9); !ok || p90 > bound {
		t.Errorf("p90 %vms (known %v), want at most %vms: the slowest of the requests took %v end to end; buckets %+v", p90, ok, bound, longest, got.Buckets)
	}
	other := rollout.Scope{Reporter: "source", Hosts: []string{"ratings.default.svc.cluster.local"}}
	if s := sampler.Sample(context.Background(), []string{client}, other)[client]; s.Requests != 0 {
		t.Errorf("requests to reviews counted for ratings: %+v", s)
	}
	dest := rollout.Scope{Reporter: "destination"}
	if s := sampler.Sample(context.Background(), []string{client}, dest)[client]; s.Requests != 0 {
		t.Errorf("the client's requests counted as the server side's: %+v", s)
	}
}
