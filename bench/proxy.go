package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The proxy benchmark sends small HTTP/1.1 requests at a fixed 1000 req/s and
// at the maximum rate through mesh-proxy, HAProxy and nginx (Debian packages,
// when installed) and directly to the same upstream, and compares added
// latency, CPU per 1000 requests and RSS. The load generator speaks raw
// HTTP/1.1 over a fixed set of keep-alive connections, so its own cost is
// small and the same for every target; the rounds interleave the targets so
// a busy shared machine skews none of them alone, and each figure is the
// median over the rounds.
func init() {
	register(Bench{Name: "proxy", Issue: 5, Run: runProxyBench})
}

const (
	pxRate          = 1000
	pxFixedRequests = 3000  // three seconds at 1000 req/s
	pxFixedConns    = 8     // keep-alive connections the fixed load spreads over
	pxMaxRequests   = 20000 // closed loop, bounded
	pxWorkers       = 16
	pxRounds        = 5
	pxClusters      = 100
	// mesh-proxy runs here as a sidecar would be started: a soft heap limit
	// (--memory-limit-mib; the garbage collector works harder near it instead
	// of letting the heap double) and one thread running Go code
	// (--concurrency, Envoy's flag; Istio gives sidecars 2 workers). A second
	// instance with Go's defaults (no limit, one thread per CPU) is measured
	// too, so both settings show.
	pxMemLimitMiB   = 24
	pxConcurrency   = 1
	pxSidecarConfig = "--concurrency 1 --memory-limit-mib 24"
)

type pxTarget struct {
	name string
	how  string // how it was started, when that matters to the figures
	// header is an extra request header line ("Name: value\r\n") every
	// request to this target carries; "" for none.
	header string
	port   int
	pid    int
	stop   func()
}

type pxResult struct {
	p50, p90, p99 time.Duration
	rps           float64
	cpu           time.Duration // proxy process CPU during the run
	errors        int64
	firstErr      string
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

	all := append([]*pxTarget{direct}, targets...)
	fixedRuns := map[string][]pxResult{}
	maxRuns := map[string][]pxResult{}
	for _, t := range all {
		pxMaxLoad(t, 2000) // warm: connections, pools, caches
	}
	for round := 0; round < pxRounds; round++ {
		for _, t := range all {
			fixedRuns[t.name] = append(fixedRuns[t.name], pxFixedLoad(t))
			maxRuns[t.name] = append(maxRuns[t.name], pxMaxLoad(t, pxMaxRequests))
		}
	}
	fixed, maxr := map[string]pxResult{}, map[string]pxResult{}
	for _, t := range all {
		fixed[t.name] = pxMedian(fixedRuns[t.name])
		maxr[t.name] = pxMedian(maxRuns[t.name])
	}
	rss := map[string]int64{}
	for _, t := range targets {
		rss[t.name] = pxRSS(t.pid)
	}
	// The same proxy with Go's defaults (no heap limit, one thread per CPU), under the same load.
	var rssDefaults int64
	var defMax pxResult
	if np, err := pxStartMeshWith(env, dir, upPort, 0, 0); err == nil {
		pxMaxLoad(np, 2000)
		pxFixedLoad(np)
		var runs []pxResult
		for round := 0; round < pxRounds; round++ {
			runs = append(runs, pxMaxLoad(np, pxMaxRequests))
		}
		defMax = pxMedian(runs)
		rssDefaults = pxRSS(np.pid)
		np.stop()
	} else {
		notes = append(notes, "mesh-proxy with Go's defaults: "+err.Error())
	}
	cmd := "go run ./bench -only proxy"
	var rows []Row
	_, haveHP := fixed["haproxy"]
	quantiles := []struct {
		label string
		get   func(pxResult) time.Duration
	}{{"p50", func(r pxResult) time.Duration { return r.p50 }}, {"p90", func(r pxResult) time.Duration { return r.p90 }}, {"p99", func(r pxResult) time.Duration { return r.p99 }}}
	for _, phase := range []struct {
		label string
		res   map[string]pxResult
	}{{fmt.Sprintf("at %d req/s", pxRate), fixed}, {fmt.Sprintf("at max rate (%d connections, closed loop)", pxWorkers), maxr}} {
		d := phase.res["direct"]
		for _, q := range quantiles {
			for _, t := range targets {
				added := q.get(phase.res[t.name]) - q.get(d)
				row := Row{Figure: fmt.Sprintf("%s added latency %s %s (direct %s = %.3f ms; median of %d rounds)", t.display(), q.label, phase.label, q.label, pxMs(q.get(d)), pxRounds),
					Value: pxMs(added), Unit: "ms", Command: cmd}
				if t.name == "mesh-proxy" && haveHP {
					row.Baseline, row.BaselineValue = "haproxy", pxMs(q.get(phase.res["haproxy"])-q.get(d))
				}
				if t.name == "mesh-proxy" && q.label == "p90" && phase.res[t.name].rps < 1.5*pxRate {
					row.Target, row.Met = "< 0.5 ms", Check(added < 500*time.Microsecond)
				}
				rows = append(rows, row)
			}
		}
	}
	for _, phase := range []struct {
		label string
		res   map[string]pxResult
		n     int
	}{{fmt.Sprintf("at %d req/s", pxRate), fixed, pxFixedRequests}, {fmt.Sprintf("at max rate (%d connections)", pxWorkers), maxr, pxMaxRequests}} {
		for _, t := range targets {
			per := phase.res[t.name].cpu.Seconds() * 1000 / float64(phase.n)
			row := Row{Figure: fmt.Sprintf("%s CPU seconds (user + system) per 1000 requests %s", t.display(), phase.label), Value: per, Unit: "s", Command: cmd}
			if h, ok := phase.res["haproxy"]; ok && t.name == "mesh-proxy" {
				hper := h.cpu.Seconds() * 1000 / float64(phase.n)
				row.Baseline, row.BaselineValue = "haproxy", hper
				row.Target, row.Met = "≤ 1.5× haproxy", Check(per <= 1.5*hper)
			}
			rows = append(rows, row)
		}
	}
	for _, t := range targets {
		r := maxr[t.name]
		row := Row{Figure: fmt.Sprintf("%s throughput at max rate (%d connections; direct %.0f req/s)", t.display(), pxWorkers, maxr["direct"].rps),
			Value: r.rps, Unit: "req/s", Command: cmd}
		if t.name == "mesh-proxy" && haveHP {
			row.Baseline, row.BaselineValue = "haproxy", maxr["haproxy"].rps
		}
		rows = append(rows, row)
		for _, runs := range [][]pxResult{fixedRuns[t.name], maxRuns[t.name]} {
			for _, r := range runs {
				if r.errors > 0 {
					notes = append(notes, fmt.Sprintf("%s: %d failed requests in a round (first: %s)", t.name, r.errors, r.firstErr))
				}
			}
		}
	}
	row := Row{Figure: fmt.Sprintf("mesh-proxy RSS with %d clusters after the load (%s)", pxClusters, pxSidecarConfig),
		Value: MiB(rss["mesh-proxy"]), Unit: "MiB", Target: "< 40 MiB", Met: Check(rss["mesh-proxy"] < 40<<20), Command: cmd}
	if r, ok := rss["haproxy"]; ok {
		row.Baseline, row.BaselineValue = "haproxy (1 backend)", MiB(r)
	}
	rows = append(rows, row)
	if rssDefaults > 0 {
		hper := maxr["haproxy"].cpu.Seconds() * 1000 / float64(pxMaxRequests)
		row := Row{Figure: fmt.Sprintf("mesh-proxy with Go's defaults (no heap limit, one thread per CPU): CPU seconds per 1000 requests at max rate (%d connections; median of %d rounds, after the others)", pxWorkers, pxRounds),
			Value: defMax.cpu.Seconds() * 1000 / float64(pxMaxRequests), Unit: "s", Command: cmd}
		if _, ok := maxr["haproxy"]; ok {
			row.Baseline, row.BaselineValue = "haproxy (earlier in the run)", hper
		}
		rows = append(rows, row,
			Row{Figure: fmt.Sprintf("mesh-proxy with Go's defaults: RSS with %d clusters after the same load", pxClusters), Value: MiB(rssDefaults), Unit: "MiB", Command: cmd})
	}
	if r, ok := rss["nginx"]; ok {
		rows = append(rows, Row{Figure: "nginx RSS after the load (1 upstream, 1 worker)", Value: MiB(r), Unit: "MiB", Command: cmd})
	}
	if len(notes) > 0 {
		return rows, fmt.Errorf("%s", strings.Join(notes, "; "))
	}
	return rows, nil
}

// display names the target in a figure, with its settings.
func (t *pxTarget) display() string {
	if t.how != "" {
		return t.name + " (" + t.how + ")"
	}
	return t.name
}

func pxMs(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// pxMedian takes each figure's median over the rounds.
func pxMedian(runs []pxResult) pxResult {
	med := func(get func(pxResult) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out := pxResult{
		p50: time.Duration(med(func(r pxResult) float64 { return float64(r.p50) })),
		p90: time.Duration(med(func(r pxResult) float64 { return float64(r.p90) })),
		p99: time.Duration(med(func(r pxResult) float64 { return float64(r.p99) })),
		rps: med(func(r pxResult) float64 { return r.rps }),
		cpu: time.Duration(med(func(r pxResult) float64 { return float64(r.cpu) })),
	}
	for _, r := range runs {
		out.errors += r.errors
	}
	return out
}

// pxConn is one keep-alive HTTP/1.1 client connection speaking raw bytes.
type pxConn struct {
	port int
	c    net.Conn
	br   *bufio.Reader
	req  []byte
}

func newPxConn(port int, path string, header ...string) *pxConn {
	return &pxConn{port: port, req: []byte("GET " + path + " HTTP/1.1\r\nHost: app.default.svc.cluster.local\r\nUser-Agent: mesh-bench\r\n" + strings.Join(header, "") + "\r\n")}
}

// do sends one request and reads the whole answer; it redials after the server closes.
func (p *pxConn) do() error {
	if p.c == nil {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
		if err != nil {
			return err
		}
		p.c, p.br = c, bufio.NewReaderSize(c, 4096)
	}
	err := p.exchange()
	if err != nil {
		p.close()
	}
	return err
}

func (p *pxConn) exchange() error {
	p.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := p.c.Write(p.req); err != nil {
		return err
	}
	status, err := p.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(status) < 12 || string(status[9:12]) != "200" {
		return fmt.Errorf("status %q", bytes.TrimSpace(status))
	}
	cl, closing := -1, false
	for {
		l, err := p.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		l = bytes.TrimRight(l, "\r\n")
		if len(l) == 0 {
			break
		}
		k, v, _ := bytes.Cut(l, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			cl, _ = strconv.Atoi(string(v))
		case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
			closing = true
		}
	}
	if cl < 0 {
		return fmt.Errorf("answer without Content-Length")
	}
	if _, err := p.br.Discard(cl); err != nil {
		return err
	}
	if closing {
		p.close()
	}
	return nil
}

func (p *pxConn) close() {
	if p.c != nil {
		p.c.Close()
		p.c = nil
	}
}

// pxFixedLoad is open loop: one request every millisecond, whatever the
// answers do, spread over a few keep-alive connections. Latency is timed
// from the moment a connection sends, not from the schedule: on a shared
// two-core machine the generator's own wake-ups are late by milliseconds,
// which would swamp the sub-millisecond differences being measured.
func pxFixedLoad(t *pxTarget) pxResult {
	lat := make([]time.Duration, pxFixedRequests)
	var errs atomic.Int64
	var firstErr atomic.Value
	jobs := make(chan int, pxFixedRequests)
	var wg sync.WaitGroup
	start := time.Now()
	sched := func(i int) time.Time { return start.Add(time.Duration(i) * time.Second / pxRate) }
	for w := 0; w < pxFixedConns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := newPxConn(t.port, "/fixed", t.header)
			defer pc.close()
			for i := range jobs {
				s := time.Now()
				if err := pc.do(); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				lat[i] = time.Since(s)
			}
		}()
	}
	cpu0 := pxCPU(t.pid)
	for i := 0; i < pxFixedRequests; i++ {
		time.Sleep(time.Until(sched(i)))
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	r := pxPercentiles(lat)
	r.rps = float64(pxFixedRequests) / time.Since(start).Seconds()
	r.cpu = pxCPU(t.pid) - cpu0
	r.errors = errs.Load()
	if e, ok := firstErr.Load().(string); ok {
		r.firstErr = e
	}
	return r
}

// pxMaxLoad is closed loop: each connection sends back to back until n requests are done.
func pxMaxLoad(t *pxTarget, n int) pxResult {
	lat := make([]time.Duration, n)
	var next, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	cpu0 := pxCPU(t.pid)
	start := time.Now()
	for w := 0; w < pxWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := newPxConn(t.port, "/max", t.header)
			defer pc.close()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				s := time.Now()
				if err := pc.do(); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				lat[i] = time.Since(s)
			}
		}()
	}
	wg.Wait()
	r := pxPercentiles(lat)
	r.rps = float64(n) / time.Since(start).Seconds()
	r.cpu = pxCPU(t.pid) - cpu0
	r.errors = errs.Load()
	if e, ok := firstErr.Load().(string); ok {
		r.firstErr = e
	}
	return r
}

func pxPercentiles(lat []time.Duration) pxResult {
	s := slices.Clone(lat)
	slices.Sort(s)
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
	t, err := pxStartMeshWith(env, dir, upPort, pxMemLimitMiB, pxConcurrency)
	if t != nil {
		t.how = pxSidecarConfig
	}
	return t, err
}

// pxStartMeshWith starts mesh-proxy with a soft heap limit in MiB and a thread count (0: Go's defaults).
func pxStartMeshWith(env *Env, dir string, upPort int, memLimitMiB, concurrency int) (*pxTarget, error) {
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
	bs := filepath.Join(dir, fmt.Sprintf("mesh-proxy-%d.yaml", port))
	if err := os.WriteFile(bs, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return pxStart("mesh-proxy", port, bin, "--bootstrap", bs, "--admin-address", "127.0.0.1:0", "--health-address", "", "--stats-address", "",
		"--log-level", "warn", "--memory-limit-mib", strconv.Itoa(memLimitMiB), "--concurrency", strconv.Itoa(concurrency))
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
