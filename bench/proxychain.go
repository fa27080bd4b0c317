package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The filter-chain benchmark asks what mesh-proxy's HTTP filter chain costs
// the lean HTTP/1.1 path: the proxy bench's load (1000 req/s and the
// closed-loop maximum) through mesh-proxy with an RBAC filter (a DENY policy
// the requests do not match, so every request is evaluated) and a local rate
// limit that is configured but disabled (filter_enabled 0%), against the same
// binary with the router alone, and, when MESH_BENCH_PROXY_BEFORE names a
// mesh-proxy built from before the filter chain (#13), against that binary
// with the RBAC filter (it has no local rate limit). Targets are interleaved round by round, and each figure is the median
// over the rounds.
// CPU is read from every thread's schedstat (nanoseconds), since /proc's
// 10 ms ticks are too coarse for a 5% comparison of a few hundred ms.
func init() {
	register(Bench{Name: "proxychain", Issue: 13, Run: runProxyChainBench})
}

const (
	pcRounds      = 11
	pcMaxRequests = 40000
)

// pcCPU sums the CPU time of a process's threads from /proc/PID/task/*/schedstat.
func pcCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

const pcRBAC = `          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  deny-admin:
                    permissions: [{url_path: {path: {prefix: /admin}}}]
                    principals: [{any: true}]
`

const pcFilters = pcRBAC + `          - name: envoy.filters.http.local_ratelimit
            is_optional: true
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: http_local_rate_limiter
              token_bucket: {max_tokens: 100, tokens_per_fill: 100, fill_interval: 1s}
              filter_enabled: {default_value: {numerator: 0}, runtime_key: local_rate_limit_enabled}
              filter_enforced: {default_value: {numerator: 100}, runtime_key: local_rate_limit_enforced}
`

func runProxyChainBench(env *Env) ([]Row, error) {
	upPort, stopUp, err := pcUpstream()
	if err != nil {
		return nil, err
	}
	defer stopUp()
	dir, err := os.MkdirTemp("", "mesh-bench-proxychain")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := env.Bin("mesh-proxy")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run make build", bin)
	}
	plain, err := pcStart(bin, "mesh-proxy, router only", dir, upPort, "")
	if err != nil {
		return nil, err
	}
	defer plain.stop()
	chained, err := pcStart(bin, "mesh-proxy, RBAC + disabled local_ratelimit", dir, upPort, pcFilters)
	if err != nil {
		return nil, err
	}
	defer chained.stop()
	targets := []*pxTarget{plain, chained}
	var before *pxTarget
	if b := os.Getenv("MESH_BENCH_PROXY_BEFORE"); b != "" {
		// A binary from before the chain has no local_ratelimit (its bootstrap parser cannot even name the type): RBAC alone.
		if before, err = pcStart(b, "mesh-proxy before the filter chain, RBAC", dir, upPort, pcRBAC); err != nil {
			return nil, fmt.Errorf("MESH_BENCH_PROXY_BEFORE: %w", err)
		}
		defer before.stop()
		targets = append(targets, before)
	}
	fixedRuns, maxRuns := map[string][]pxResult{}, map[string][]pxResult{}
	for _, t := range targets {
		pxMaxLoad(t, 2000)
	}
	for round := 0; round < pcRounds; round++ {
		for _, t := range targets {
			c0 := pcCPU(t.pid)
			r := pxFixedLoad(t)
			r.cpu = pcCPU(t.pid) - c0
			fixedRuns[t.name] = append(fixedRuns[t.name], r)
			c0 = pcCPU(t.pid)
			r = pxMaxLoad(t, pcMaxRequests)
			r.cpu = pcCPU(t.pid) - c0
			maxRuns[t.name] = append(maxRuns[t.name], r)
		}
	}
	cmd := "go run ./bench -only proxychain"
	if before != nil {
		cmd = "MESH_BENCH_PROXY_BEFORE=<mesh-proxy of the earlier commit> " + cmd
	}
	var rows []Row
	var notes []string
	for _, phase := range []struct {
		label string
		runs  map[string][]pxResult
		n     int
	}{{fmt.Sprintf("at %d req/s", pxRate), fixedRuns, pxFixedRequests}, {fmt.Sprintf("at max rate (%d connections, %d requests a round)", pxWorkers, pcMaxRequests), maxRuns, pcMaxRequests}} {
		per := func(t *pxTarget) float64 { return pxMedian(phase.runs[t.name]).cpu.Seconds() * 1000 / float64(phase.n) }
		spread := func(t *pxTarget) string {
			lo, hi := 0.0, 0.0
			for i, r := range phase.runs[t.name] {
				v := r.cpu.Seconds() * 1000 / float64(phase.n)
				if i == 0 || v < lo {
					lo = v
				}
				if v > hi {
					hi = v
				}
			}
			return fmt.Sprintf("%.4g–%.4g s over %d rounds", lo, hi, len(phase.runs[t.name]))
		}
		row := Row{Figure: fmt.Sprintf("%s (%s): CPU seconds per 1000 requests %s (median; %s)", chained.name, pxSidecarConfig, phase.label, spread(chained)),
			Value: per(chained), Unit: "s", Baseline: plain.name + " (" + spread(plain) + ")", BaselineValue: per(plain), Command: cmd}
		rows = append(rows, row)
		if before != nil {
			row := Row{Figure: fmt.Sprintf("%s (%s): CPU seconds per 1000 requests %s, against the binary before the filter chain (median; %s)", chained.name, pxSidecarConfig, phase.label, spread(chained)),
				Value: per(chained), Unit: "s", Baseline: before.name + " (" + spread(before) + ")", BaselineValue: per(before), Target: "≤ 1.05× before", Command: cmd}
			row.Met = Check(row.Value <= 1.05*row.BaselineValue)
			rows = append(rows, row)
		}
		for _, t := range targets {
			for _, r := range phase.runs[t.name] {
				if r.errors > 0 {
					notes = append(notes, fmt.Sprintf("%s: %d failed requests in a round (first: %s)", t.name, r.errors, r.firstErr))
				}
			}
		}
	}
	if len(notes) > 0 {
		return rows, fmt.Errorf("%s", strings.Join(notes, "; "))
	}
	return rows, nil
}

// pcUpstream is the proxy bench's upstream: a small fixed answer.
func pcUpstream() (int, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	body := []byte("hello from upstream\n")
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(body)
	})}
	go up.Serve(ln)
	return ln.Addr().(*net.TCPAddr).Port, func() { up.Close() }, nil
}

// pcStart runs a mesh-proxy binary as the proxy bench does (sidecar settings), with extra HTTP filters before the router.
func pcStart(bin, name, dir string, upPort int, filters string, clusters ...string) (*pxTarget, error) {
	port, err := pxFreePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`node: {id: "sidecar~127.0.0.1~bench-1.default~default.svc.cluster.local"}
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
%s          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: "outbound|80||app.default.svc.cluster.local"
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: "outbound|80||app.default.svc.cluster.local"
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
%s`, port, filters, upPort, strings.Join(clusters, ""))
	bs := filepath.Join(dir, fmt.Sprintf("mesh-proxy-%d.yaml", port))
	if err := os.WriteFile(bs, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	t, err := pxStart(name, port, bin, "--bootstrap", bs, "--admin-address", "127.0.0.1:0", "--health-address", "", "--stats-address", "",
		"--log-level", "warn", "--memory-limit-mib", strconv.Itoa(pxMemLimitMiB), "--concurrency", strconv.Itoa(pxConcurrency))
	return t, err
}
