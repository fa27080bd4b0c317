package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The proxy benchmark sends small HTTP/1.1 requests from a Go load generator
// at a fixed 1000 req/s and at the maximum rate, through mesh-proxy, HAProxy
// and nginx (Debian packages, when installed) and directly to the same
// upstream, and compares added latency, CPU per 1000 requests and RSS.
func init() {
	register(Bench{Name: "proxy", Issue: 5, Run: runProxyBench})
}

const (
	pxRate          = 1000
	pxFixedRequests = 4000  // four seconds at 1000 req/s
	pxMaxRequests   = 30000 // closed loop, bounded
	pxWorkers       = 16
	pxClusters      = 100
)

type pxTarget struct {
	name string
	port int
	pid  int
	stop func()
}

type pxResult struct {
	p50, p90, p99 time.Duration
	rps           float64
	cpu           time.Duration // proxy process CPU during the run
	errors        int64
}

func runProxyBench(env *Env) ([]Row, error) {
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte("hello from upstream\n")
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(body)
	})}
	go up.Serve(upLn)
	defer up.Close()
	upPort := upLn.Addr().(*net.TCPAddr).Port
	dir, err := os.MkdirTemp("", "mesh-bench-proxy")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	direct := &pxTarget{name: "direct", port: upPort}
	targets := []*pxTarget{}
	mp, err := pxStartMesh(env, dir, upPort)
	if err != nil {
		return nil, fmt.Errorf("mesh-proxy: %w", err)
	}
	defer mp.stop()
	targets = append(targets, mp)
	var notes []string
	if hp, err := pxStartHAProxy(dir, upPort); err != nil {
		notes = append(notes, "haproxy: "+err.Error())
	} else {
		defer hp.stop()
		targets = append(targets, hp)
	}
	if ng, err := pxStartNginx(dir, upPort); err != nil {
		notes = append(notes, "nginx: "+err.Error())
	} else {
		defer ng.stop()
		targets = append(targets, ng)
	}

	fixed := map[string]pxResult{}
	maxr := map[string]pxResult{}
	for _, t := range append([]*pxTarget{direct}, targets...) {
		pxWarm(t.port)
		fixed[t.name] = pxFixedLoad(t)
		maxr[t.name] = pxMaxLoad(t)
	}
	rss := pxRSS(mp.pid)

	cmd := "go run ./bench -only proxy"
	var rows []Row
	d := fixed["direct"]
	hp, haveHP := fixed["haproxy"]
	for _, q := range []struct {
		label string
		get   func(pxResult) time.Duration
	}{{"p50", func(r pxResult) time.Duration { return r.p50 }}, {"p90", func(r pxResult) time.Duration { return r.p90 }}, {"p99", func(r pxResult) time.Duration { return r.p99 }}} {
		for _, t := range targets {
			added := q.get(fixed[t.name]) - q.get(d)
			row := Row{Figure: fmt.Sprintf("%s added latency %s at %d req/s (direct %s = %.3f ms)", t.name, q.label, pxRate, q.label, pxMs(q.get(d))),
				Value: pxMs(added), Unit: "ms", Command: cmd}
			if t.name == "mesh-proxy" && haveHP {
				row.Baseline, row.BaselineValue = "haproxy", pxMs(q.get(hp)-q.get(d))
			}
			if t.name == "mesh-proxy" && q.label == "p90" {
				row.Target, row.Met = "< 0.5 ms", Check(added < 500*time.Microsecond)
			}
			rows = append(rows, row)
		}
	}
	for _, t := range targets {
		r := maxr[t.name]
		per := r.cpu.Seconds() * 1000 / float64(pxMaxRequests)
		row := Row{Figure: fmt.Sprintf("%s CPU seconds per 1000 requests at max rate (%d workers)", t.name, pxWorkers), Value: per, Unit: "s", Command: cmd}
		if t.name == "mesh-proxy" {
			if h, ok := maxr["haproxy"]; ok {
				hper := h.cpu.Seconds() * 1000 / float64(pxMaxRequests)
				row.Baseline, row.BaselineValue = "haproxy", hper
				row.Target, row.Met = "≤ 1.5× haproxy", Check(per <= 1.5*hper)
			}
		}
		rows = append(rows, row)
		rows = append(rows, Row{Figure: fmt.Sprintf("%s throughput at max rate (%d workers; direct %.0f req/s)", t.name, pxWorkers, maxr["direct"].rps),
			Value: r.rps, Unit: "req/s", Command: cmd})
		if r.errors > 0 || fixed[t.name].errors > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d errors at max rate, %d at fixed rate", t.name, r.errors, fixed[t.name].errors))
		}
	}
	rows = append(rows, Row{Figure: fmt.Sprintf("mesh-proxy RSS with %d clusters after the load", pxClusters), Value: MiB(rss), Unit: "MiB",
		Target: "< 40 MiB", Met: Check(rss < 40<<20), Command: cmd})
	if len(notes) > 0 {
		return rows, fmt.Errorf("%s", strings.Join(notes, "; "))
	}
	return rows, nil
}

func pxMs(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func pxClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256, DisableCompression: true}, Timeout: 10 * time.Second}
}

func pxWarm(port int) {
	c := pxClient()
	u := fmt.Sprintf("http://127.0.0.1:%d/warm", port)
	for i := 0; i < 200; i++ {
		if resp, err := c.Get(u); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	c.CloseIdleConnections()
}

func pxOne(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// pxFixedLoad is open loop: pxOne request every millisecond whatever the answers do.
func pxFixedLoad(t *pxTarget) pxResult {
	c := pxClient()
	defer c.CloseIdleConnections()
	u := fmt.Sprintf("http://127.0.0.1:%d/fixed", t.port)
	lat := make([]time.Duration, pxFixedRequests)
	var errs atomic.Int64
	var wg sync.WaitGroup
	cpu0 := pxCPU(t.pid)
	start := time.Now()
	for i := 0; i < pxFixedRequests; i++ {
		next := start.Add(time.Duration(i) * time.Second / pxRate)
		time.Sleep(time.Until(next))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := time.Now()
			if err := pxOne(c, u); err != nil {
				errs.Add(1)
			}
			lat[i] = time.Since(s)
		}(i)
	}
	wg.Wait()
	r := pxPercentiles(lat)
	r.rps = float64(pxFixedRequests) / time.Since(start).Seconds()
	r.cpu = pxCPU(t.pid) - cpu0
	r.errors = errs.Load()
	return r
}

// pxMaxLoad is closed loop: workers send back to back until the budget is spent.
func pxMaxLoad(t *pxTarget) pxResult {
	c := pxClient()
	defer c.CloseIdleConnections()
	u := fmt.Sprintf("http://127.0.0.1:%d/max", t.port)
	lat := make([]time.Duration, pxMaxRequests)
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	cpu0 := pxCPU(t.pid)
	start := time.Now()
	for w := 0; w < pxWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= pxMaxRequests {
					return
				}
				s := time.Now()
				if err := pxOne(c, u); err != nil {
					errs.Add(1)
				}
				lat[i] = time.Since(s)
			}
		}()
	}
	wg.Wait()
	r := pxPercentiles(lat)
	r.rps = float64(pxMaxRequests) / time.Since(start).Seconds()
	r.cpu = pxCPU(t.pid) - cpu0
	r.errors = errs.Load()
	return r
}

func pxPercentiles(lat []time.Duration) pxResult {
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return pxResult{p50: at(0.50), p90: at(0.90), p99: at(0.99)}
}

// pxCPU reads a process's user+system CPU from /proc; 0 for the in-process direct target.
func pxCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func pxRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func pxFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func pxStart(name string, port int, path string, args ...string) (*pxTarget, error) {
	cmd := exec.Command(path, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &pxTarget{name: name, port: port, pid: cmd.Process.Pid, stop: func() { cmd.Process.Kill(); cmd.Wait() }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return t, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.stop()
	return nil, fmt.Errorf("%s did not start listening on %d: %s", name, port, tail(stderr.String()))
}

func pxStartMesh(env *Env, dir string, upPort int) (*pxTarget, error) {
	bin := env.Bin("mesh-proxy")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run make build", bin)
	}
	port, err := pxFreePort()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `node: {id: "sidecar~127.0.0.1~bench-1.default~default.svc.cluster.local"}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - {match: {prefix: "/"}, route: {cluster: "outbound|80||app.default.svc.cluster.local"}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
`, port)
	for i := 0; i < pxClusters; i++ {
		name := "outbound|80||app.default.svc.cluster.local"
		if i > 0 {
			name = fmt.Sprintf("outbound|80||svc-%d.default.svc.cluster.local", i)
		}
		fmt.Fprintf(&b, `  - name: %q
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: %q
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
`, name, name, upPort)
	}
	bs := filepath.Join(dir, "mesh-proxy.yaml")
	if err := os.WriteFile(bs, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return pxStart("mesh-proxy", port, bin, "--bootstrap", bs, "--admin-address", "127.0.0.1:0", "--health-address", "", "--stats-address", "", "--log-level", "warn")
}

func pxStartHAProxy(dir string, upPort int) (*pxTarget, error) {
	path, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install -y haproxy) — skipped")
	}
	port, err := pxFreePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:%d
  default_backend be
backend be
  server s1 127.0.0.1:%d
`, port, upPort)
	p := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return pxStart("haproxy", port, path, "-f", p, "-db")
}

func pxStartNginx(dir string, upPort int) (*pxTarget, error) {
	path, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install -y nginx) — skipped")
	}
	port, err := pxFreePort()
	if err != nil {
		return nil, err
	}
	nd := filepath.Join(dir, "nginx")
	os.MkdirAll(filepath.Join(nd, "logs"), 0o755)
	// Single process, like the other proxies measured as pxOne PID.
	cfg := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream up { server 127.0.0.1:%[3]d; keepalive 64; }
  server {
    listen 127.0.0.1:%[2]d;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`, nd, port, upPort)
	p := filepath.Join(nd, "nginx.conf")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return pxStart("nginx", port, path, "-p", nd, "-c", p)
}
