package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// healthChecker actively probes every host over HTTP.
type healthChecker struct {
	c                  *Cluster
	path, host         string
	expected           [][2]int64
	interval, timeout  time.Duration
	unhealthy, healthy uint32
	kickCh             chan struct{}
	mu                 sync.Mutex
	fails, passes      map[string]uint32
}

func compileHealthCheck(c *Cluster, hcs []*corev3.HealthCheck, f string) (*healthChecker, error) {
	if len(hcs) > 1 {
		return nil, fmt.Errorf("%s: health_checks: only one health check is supported", f)
	}
	hc := hcs[0]
	hh := hc.GetHttpHealthCheck()
	if hh == nil {
		return nil, fmt.Errorf("%s: health_checks[0]: only http_health_check is supported", f)
	}
	if hh.GetCodecClientType() == 2 { // HTTP3
		return nil, fmt.Errorf("%s: health_checks[0].http_health_check.codec_client_type HTTP3 is not supported", f)
	}
	h := &healthChecker{
		c: c, path: hh.GetPath(), host: hh.GetHost(),
		interval: hc.GetInterval().AsDuration(), timeout: hc.GetTimeout().AsDuration(),
		unhealthy: max(1, hc.GetUnhealthyThreshold().GetValue()), healthy: max(1, hc.GetHealthyThreshold().GetValue()),
		kickCh: make(chan struct{}, 1), fails: map[string]uint32{}, passes: map[string]uint32{},
	}
	for _, r := range hh.GetExpectedStatuses() {
		h.expected = append(h.expected, [2]int64{r.GetStart(), r.GetEnd()})
	}
	if len(h.expected) == 0 {
		h.expected = [][2]int64{{200, 201}}
	}
	if h.timeout <= 0 {
		h.timeout = time.Second
	}
	if h.interval <= 0 {
		h.interval = 5 * time.Second
	}
	return h, nil
}

func (h *healthChecker) kick() {
	select {
	case h.kickCh <- struct{}{}:
	default:
	}
}

func (h *healthChecker) run() {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.checkAll()
		select {
		case <-h.c.stop:
			return
		case <-t.C:
		case <-h.kickCh:
		}
	}
}

func (h *healthChecker) checkAll() {
	var wg sync.WaitGroup
	for _, host := range h.c.Hosts() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.observe(host, h.probe(host))
		}()
	}
	wg.Wait()
}

func (h *healthChecker) probe(host *Host) bool {
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	scheme := "http"
	s := h.c.sockOf(host)
	if s.tls != nil {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host.Addr+h.path, nil)
	if err != nil {
		return false
	}
	if h.host != "" {
		req.Host = h.host
	} else {
		req.Host = h.c.Name
	}
	req.Header.Set("User-Agent", "Envoy/HC")
	resp, err := (&http.Client{Transport: s.h1(), Timeout: h.timeout}).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	for _, r := range h.expected {
		if int64(resp.StatusCode) >= r[0] && int64(resp.StatusCode) < r[1] {
			return true
		}
	}
	return false
}

func (h *healthChecker) observe(host *Host, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		h.c.Stats.HCSuccess.Add(1)
		h.fails[host.Addr] = 0
		h.passes[host.Addr]++
		// A host never seen passing becomes healthy on its first pass, as in Envoy.
		if host.hcFailed.Load() && (h.passes[host.Addr] >= h.healthy || host.rqTotal.Load() == 0 && h.passes[host.Addr] == 1) {
			host.hcFailed.Store(false)
		}
		return
	}
	h.c.Stats.HCFailure.Add(1)
	h.passes[host.Addr] = 0
	h.fails[host.Addr]++
	if h.fails[host.Addr] >= h.unhealthy {
		host.hcFailed.Store(true)
	}
}
