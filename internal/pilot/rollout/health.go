package rollout

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
)

// Health gates (docs/rollout.md): while a stage soaks, pilot reads the
// request metrics the affected proxies keep themselves (Istio's
// istio_requests_total and istio_request_duration_milliseconds, from each
// proxy's /stats/prometheus) and compares the staged proxies with those
// still on the released version. No Prometheus server is involved.

// Sample is what one proxy (or a group of proxies) counted of the traffic
// a resource touches.
type Sample struct {
	Requests float64
	// Failed counts 5xx answers and requests the mesh's RBAC denied
	// (response flag RBAC): an AuthorizationPolicy denying real traffic
	// fails the gate as a route to nowhere does.
	Failed float64
	// Buckets are the request duration histogram, cumulative, by upper
	// bound in milliseconds (+Inf last).
	Buckets []Bucket
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	LE    float64 `json:"le"`
	Count float64 `json:"count"`
}

// Add sums two samples (buckets by bound).
func (s Sample) Add(o Sample) Sample { return s.combine(o, 1) }

// Sub is what s counted since o (counters only grow; a proxy that
// restarted, whose counters went back, counts from zero).
func (s Sample) Sub(o Sample) Sample {
	if s.Requests < o.Requests {
		return s
	}
	return s.combine(o, -1)
}

func (s Sample) combine(o Sample, sign float64) Sample {
	out := Sample{Requests: s.Requests + sign*o.Requests, Failed: s.Failed + sign*o.Failed}
	byLE := map[float64]float64{}
	for _, b := range s.Buckets {
		byLE[b.LE] += b.Count
	}
	for _, b := range o.Buckets {
		byLE[b.LE] += sign * b.Count
	}
	for le, n := range byLE {
		out.Buckets = append(out.Buckets, Bucket{LE: le, Count: math.Max(n, 0)})
	}
	sort.Slice(out.Buckets, func(i, j int) bool { return out.Buckets[i].LE < out.Buckets[j].LE })
	out.Requests, out.Failed = math.Max(out.Requests, 0), math.Max(out.Failed, 0)
	return out
}

// Quantile estimates the q quantile of the request durations (ms) from
// the histogram, interpolating within the bucket it falls in as
// Prometheus' histogram_quantile does; false without requests.
func (s Sample) Quantile(q float64) (float64, bool) {
	if len(s.Buckets) == 0 {
		return 0, false
	}
	total := s.Buckets[len(s.Buckets)-1].Count
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range s.Buckets {
		if b.Count >= rank {
			if math.IsInf(b.LE, 1) {
				return lower, true // beyond the last finite bound: that bound
			}
			if b.Count == below {
				return b.LE, true
			}
			return lower + (b.LE-lower)*(rank-below)/(b.Count-below), true
		}
		lower, below = b.LE, b.Count
	}
	return lower, true
}

// Scope is the traffic a resource touches, as a proxy's metrics label it.
type Scope struct {
	// Reporter is the side whose config the resource changes: "source"
	// (routing: the client's proxy) or "destination" (policy: the
	// server's). Counting one side counts each request once.
	Reporter string
	// Hosts are the destination_service values (FQDNs, or "*.suffix")
	// the resource names; empty for all the reporter's traffic.
	Hosts []string
}

func (sc Scope) keeps(l map[string]string) bool {
	if sc.Reporter != "" && l["reporter"] != sc.Reporter {
		return false
	}
	if len(sc.Hosts) == 0 {
		return true
	}
	svc := l["destination_service"]
	for _, h := range sc.Hosts {
		if h == svc || strings.HasPrefix(h, "*") && strings.HasSuffix(svc, h[1:]) {
			return true
		}
	}
	return false
}

// ReadIstioMetrics sums, from a proxy's /stats/prometheus (Prometheus'
// text format), the requests in scope: their count, the failed ones and
// the duration histogram.
func ReadIstioMetrics(r io.Reader, sc Scope) (Sample, error) {
	p := expfmt.NewTextParser(prommodel.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Sample{}, fmt.Errorf("not Prometheus text: %w", err)
	}
	var s Sample
	for _, m := range mfs["istio_requests_total"].GetMetric() {
		l := labels(m.GetLabel())
		if !sc.keeps(l) {
			continue
		}
		n := m.GetCounter().GetValue()
		s.Requests += n
		if strings.HasPrefix(l["response_code"], "5") || strings.Contains(l["response_flags"], "RBAC") {
			s.Failed += n
		}
	}
	var hist Sample
	for _, m := range mfs["istio_request_duration_milliseconds"].GetMetric() {
		if !sc.keeps(labels(m.GetLabel())) {
			continue
		}
		h := Sample{}
		for _, b := range m.GetHistogram().GetBucket() {
			if math.IsInf(b.GetUpperBound(), 1) {
				continue // the text format lists +Inf; it is the count, added below
			}
			h.Buckets = append(h.Buckets, Bucket{LE: b.GetUpperBound(), Count: float64(b.GetCumulativeCount())})
		}
		// One +Inf bucket, the sample count: counted twice (the text's
		// le="+Inf" line and the count), every quantile fell beyond the
		// last finite bound and read as it (3600000ms on Istio's buckets).
		h.Buckets = append(h.Buckets, Bucket{LE: math.Inf(1), Count: float64(m.GetHistogram().GetSampleCount())})
		hist = hist.Add(h)
	}
	s.Buckets = hist.Buckets
	return s, nil
}

func labels[T interface {
	GetName() string
	GetValue() string
}](ls []T) map[string]string {
	out := make(map[string]string, len(ls))
	for _, l := range ls {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// Sampler reads the metrics of the given proxies (node ids) for a scope;
// a proxy it cannot read is left out of the result.
type Sampler func(ctx context.Context, proxies []string, sc Scope) map[string]Sample

// ScrapeProxies is the Sampler pilot uses: each proxy's stats port on its
// pod address (the IP in its node id; mesh-proxy's --stats-address,
// Istio's 15020), at most eight at a time, each within Timeout.
type ScrapeProxies struct {
	Port    int           // default 15020
	Timeout time.Duration // default 2s
	Client  *http.Client  // default a plain client
	// Addr, when set, gives a proxy's stats host:port instead (tests).
	Addr func(nodeID string) string
}

// Sample implements Sampler.
func (sp *ScrapeProxies) Sample(ctx context.Context, proxies []string, sc Scope) map[string]Sample {
	port, timeout, client := sp.Port, sp.Timeout, sp.Client
	if port == 0 {
		port = 15020
	}
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	if client == nil {
		client = &http.Client{}
	}
	out := map[string]Sample{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, id := range proxies {
		addr := ""
		if sp.Addr != nil {
			addr = sp.Addr(id)
		} else if parts := strings.Split(id, "~"); len(parts) == 4 && parts[1] != "" {
			addr = net.JoinHostPort(parts[1], strconv.Itoa(port))
		}
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+addr+"/stats/prometheus", nil)
			if err != nil {
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return
			}
			s, err := ReadIstioMetrics(resp.Body, sc)
			if err != nil {
				return
			}
			mu.Lock()
			out[id] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// GroupHealth is what one group of proxies (the staged ones, or those on
// the released version) counted during the stage.
type GroupHealth struct {
	Proxies  int     `json:"proxies"`  // in the group
	Reported int     `json:"reported"` // whose metrics pilot could read
	Requests float64 `json:"requests"`
	Failed   float64 `json:"failed"`
	// FailedRatio is Failed/Requests (0 without requests).
	FailedRatio float64 `json:"failedRatio"`
	// P90 is the 90th percentile request duration in ms (0 unknown).
	P90 float64 `json:"p90Ms,omitempty"`
}

// Health is a stage's figures at its last check.
type Health struct {
	CheckedAt time.Time   `json:"checkedAt"`
	Candidate GroupHealth `json:"candidate"`
	Released  GroupHealth `json:"released"`
}

func (h *Health) String() string {
	c, r := h.Candidate, h.Released
	return fmt.Sprintf("candidate: %.0f requests, %.0f failed (%.3f), p90 %s on %d/%d proxies; released: %.0f requests, %.0f failed (%.3f), p90 %s on %d/%d proxies",
		c.Requests, c.Failed, c.FailedRatio, ms(c.P90), c.Reported, c.Proxies,
		r.Requests, r.Failed, r.FailedRatio, ms(r.P90), r.Reported, r.Proxies)
}

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
}

// MinRequests is how many requests a group must have answered during the
// stage before a gate judges it: fewer say nothing either way.
const MinRequests = 10

func group(samples map[string]Sample, since map[string]Sample, ids []string) (GroupHealth, Sample) {
	g := GroupHealth{Proxies: len(ids)}
	var sum Sample
	for _, id := range ids {
		s, ok := samples[id]
		if !ok {
			continue
		}
		g.Reported++
		sum = sum.Add(s.Sub(since[id]))
	}
	g.Requests, g.Failed = sum.Requests, sum.Failed
	if sum.Requests > 0 {
		g.FailedRatio = sum.Failed / sum.Requests
	}
	if p, ok := sum.Quantile(0.9); ok {
		g.P90 = p
	}
	return g, sum
}

// judge reports why the figures fail spec's gates ("" when they pass, or
// when there is not yet enough traffic to tell).
func judge(spec *Spec, h *Health, cand, rel Sample) string {
	if spec.Has5xxGate && cand.Requests >= MinRequests && h.Candidate.FailedRatio > spec.Max5xxRatio {
		return fmt.Sprintf("failed-request ratio %.3f over %s %g (%.0f of %.0f requests on the staged proxies failed: 5xx or denied)",
			h.Candidate.FailedRatio, AnnotationMax5xxRatio, spec.Max5xxRatio, h.Candidate.Failed, h.Candidate.Requests)
	}
	if spec.HasLatencyGate && cand.Requests >= MinRequests && rel.Requests >= MinRequests && h.Released.P90 > 0 &&
		h.Candidate.P90 > spec.MaxLatencyIncrease*h.Released.P90 {
		return fmt.Sprintf("p90 latency %.1fms on the staged proxies is %.2f× the released version's %.1fms, over %s %g",
			h.Candidate.P90, h.Candidate.P90/h.Released.P90, h.Released.P90, AnnotationMaxLatencyIncrease, spec.MaxLatencyIncrease)
	}
	return ""
}
