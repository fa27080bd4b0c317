package main

import (
	"context"
	"crypto"
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"mesh.dev/mesh/internal/pilot/ca"
)

// The mtls-pair benchmark measures the hop a mesh request really makes: the
// caller's sidecar, an mTLS connection, the callee's sidecar. Three pairs
// carry the same traffic on loopback: two mesh-proxy sidecars configured as
// pilot configures ISTIO_MUTUAL (SDS secrets "default" and "ROOTCA" from
// pilot's CA, inbound RBAC allowing the caller's SPIFFE principal, Istio
// metrics recorded), two HAProxy and two nginx (TLS origination on the
// first with a client certificate, termination with client-certificate
// verification on the second), plus the direct baseline. Each pair is
// measured for small HTTP/1.1 requests and gRPC unary calls; CPU is summed
// over both proxies of a pair from /proc.
//
// MESH_BENCH_PROFILE=DIR takes a CPU profile of each mesh sidecar over the
// first round of each protocol (the admin API's /cpuprofiler) into
// DIR/{http1,grpc}-{client,server}.pprof; read them with
// go tool pprof bin/mesh-proxy FILE.
//
// Where the mesh pair's time goes (pprof of both sidecars under this bench,
// 2026-12-06, shared 2-core machine at 1-min load 8-19):
//   - HTTP/1.1, the lean path on both sides: 35-40% of each sidecar's CPU is
//     the read and write system calls on its two connections (a read that
//     finds nothing yet costs a second one after the poller wakes it), then
//     TLS record sealing and opening; GC is about 12% of the client
//     sidecar's, which holds the 1,000 clusters under --memory-limit-mib 24.
//   - gRPC unary, Go's net/http HTTP/2 server, ReverseProxy and HTTP/2
//     transport on both sides: hand-offs between each connection's read
//     loop, handler and writer goroutines, header maps cloned several times
//     per call. Before clusters built their pools lazily the client
//     sidecar's heap sat at its memory limit and GC took 45% of its CPU,
//     16% after. On 2026-12-07 (load 11-20) two more went: HPACK table
//     evictions (5-6% a side; the encoders now index nothing) and a write
//     system call per frame (15.7% of the client's CPU and 17% of the
//     server's, now 8.7% and 4.7%: HTTP/2 connections batch their writes,
//     internal/proxy/batchconn). Over the same 12,000 calls the profiled
//     CPU fell from 3.82 s to 2.76 s on the client sidecar and from 3.11 s
//     to 1.92 s on the server's. Where it goes now: the handler goroutine
//     (ReverseProxy and the transport's request, 23% client, 38% server),
//     allocation and GC (mallocgc 12% and 21%; GC 23% of the client, which
//     holds 1,000 clusters under --memory-limit-mib 24, 8% of the server),
//     header encoding and its validation (10-12%, net/http's EncodeHeaders),
//     goroutine stack growth (7%: a new goroutine per stream and per call)
//     and the scheduler (selectgo, park: 12%). The rest of the gap needs a
//     lean HTTP/2 path like the HTTP/1.1 one: one goroutine per connection,
//     headers written from the route's own lists, no per-call goroutines.
//   - A new connection per request resumes the TLS session (a PSK
//     handshake: no certificates), but Go's TLS 1.3 still runs the
//     X25519MLKEM768 key exchange each time, 13% of the server sidecar's CPU
//     over a round of the HTTP/1.1 phases.
func init() {
	register(Bench{Name: "mtls-pair", Issue: 24, Run: runMTLSPairBench})
}

const (
	mpRate        = 1000
	mpFixed       = 2000 // two seconds at 1000 req/s
	mpFixedConns  = 8
	mpMax         = 10000
	mpWorkers     = 16
	mpRounds      = 3
	mpClusters    = 1000
	mpNewConnRate = 200
	mpNewConnN    = 600
	mpClientSA    = "sleep"
	mpServerSA    = "app"
)

// mpPair is one two-proxy path (or the direct baseline, with no pids).
type mpPair struct {
	name      string
	h1, grpc  int // ports the client sends to
	newConn   int // HTTP/1.1 port whose hop opens a new TLS connection per request (0: none)
	pids      []int
	stops     []func()
	rssLabels []string
	// admins and profs are the mesh sidecars' admin ports and admin.profile_path (server, client).
	admins []int
	profs  []string
}

// profile starts (on) or stops each mesh sidecar's CPU profiler (the admin
// API's /cpuprofiler); a stopped profile is moved to prefix-server.pprof and
// prefix-client.pprof.
func (p *mpPair) profile(on bool, prefix string) error {
	enable := "n"
	if on {
		enable = "y"
	}
	for i, port := range p.admins {
		resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/cpuprofiler?enable=%s", port, enable), "", nil)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/cpuprofiler?enable=%s: %s: %s", enable, resp.Status, b)
		}
		if !on {
			if err := os.Rename(p.profs[i], prefix+"-"+[]string{"server", "client"}[i]+".pprof"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *mpPair) stop() {
	for _, s := range p.stops {
		s()
	}
}

func (p *mpPair) cpu() time.Duration {
	var t time.Duration
	for _, pid := range p.pids {
		t += pxCPU(pid)
	}
	return t
}

// mpClient makes one request; each load worker owns one.
type mpClient interface {
	do() error
	close()
}

type h1Client struct{ *pxConn }

func (c h1Client) do() error { return c.pxConn.do() }
func (c h1Client) close()    { c.pxConn.close() }

type grpcClient struct {
	cc *grpc.ClientConn
	hc healthpb.HealthClient
}

func (c *grpcClient) do() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health status %v", r.GetStatus())
	}
	return nil
}
func (c *grpcClient) close() { c.cc.Close() }

func newClient(proto string, port int) (mpClient, error) {
	if proto == "http1" {
		return h1Client{newPxConn(port, "/")}, nil
	}
	cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("app.default.svc.cluster.local"))
	if err != nil {
		return nil, err
	}
	return &grpcClient{cc: cc, hc: healthpb.NewHealthClient(cc)}, nil
}

// mpLoad runs n requests over conns clients; rate > 0 is open loop at that
// rate (latency timed from send, as in the proxy bench), 0 is closed loop.
func mpLoad(p *mpPair, proto string, port, n, conns, rate int) pxResult {
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		c, err := newClient(proto, port)
		if err != nil {
			fail(err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			for i := range jobs {
				s := time.Now()
				if err := c.do(); err != nil {
					fail(err)
				}
				lat[i] = time.Since(s)
			}
		}()
	}
	cpu0 := p.cpu()
	start := time.Now()
	for i := 0; i < n; i++ {
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	r := pxPercentiles(lat)
	r.rps = float64(n) / time.Since(start).Seconds()
	r.cpu = p.cpu() - cpu0
	r.errors = errs.Load()
	if e, ok := firstErr.Load().(string); ok {
		r.firstErr = e
	}
	return r
}

// mpCerts holds the PEM files every pair uses: one mesh CA, a client and a server workload.
type mpCerts struct {
	root, clientCert, clientKey, serverCert, serverKey []byte
	dir                                                string
}

func (c *mpCerts) file(name string, parts ...[]byte) string {
	p := filepath.Join(c.dir, name)
	os.WriteFile(p, slices.Concat(parts...), 0o600)
	return p
}

func mpIssue(dir string) (*mpCerts, error) {
	a, err := ca.NewSelfSigned("cluster.local", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	c := &mpCerts{root: a.RootPEM(), dir: dir}
	for _, w := range []struct {
		sa         string
		cert, keyP *[]byte
	}{{mpClientSA, &c.clientCert, &c.clientKey}, {mpServerSA, &c.serverCert, &c.serverKey}} {
		_, chain, key, err := a.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) {
			return a.SignWorkload(pub, ca.SPIFFEID("default", w.sa), 24*time.Hour)
		})
		if err != nil {
			return nil, err
		}
		*w.cert, *w.keyP = chain, key
	}
	return c, nil
}

func runMTLSPairBench(env *Env) ([]Row, error) {
	dir, err := os.MkdirTemp("", "mesh-bench-mtls")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	certs, err := mpIssue(dir)
	if err != nil {
		return nil, err
	}
	// Upstreams: an HTTP/1.1 server answering 20 bytes and a gRPC health server.
	h1Ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte("hello from upstream\n")
	h1 := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(body)
	})}
	go h1.Serve(h1Ln)
	defer h1.Close()
	gLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(gLn)
	defer gs.Stop()
	upH1, upG := h1Ln.Addr().(*net.TCPAddr).Port, gLn.Addr().(*net.TCPAddr).Port

	direct := &mpPair{name: "direct", h1: upH1, grpc: upG}
	var notes []string
	mesh, err := mpStartMesh(env, certs, upH1, upG)
	if err != nil {
		return nil, fmt.Errorf("mesh-proxy pair: %w", err)
	}
	defer mesh.stop()
	pairs := []*mpPair{mesh}
	if hp, err := mpStartHAProxy(certs, upH1, upG); err != nil {
		notes = append(notes, "haproxy pair: "+err.Error())
	} else {
		defer hp.stop()
		pairs = append(pairs, hp)
	}
	if ng, err := mpStartNginx(certs, upH1, upG); err != nil {
		notes = append(notes, "nginx pair: "+err.Error())
	} else {
		defer ng.stop()
		pairs = append(pairs, ng)
	}
	all := append([]*mpPair{direct}, pairs...)
	protos := []string{"http1", "grpc"}
	port := func(p *mpPair, proto string) int {
		if proto == "grpc" {
			return p.grpc
		}
		return p.h1
	}
	type key struct{ pair, proto, phase string }
	runs := map[key][]pxResult{}
	for _, p := range all {
		for _, proto := range protos {
			mpLoad(p, proto, port(p, proto), 2000, mpWorkers, 0) // warm connections, pools, caches
		}
	}
	profDir := os.Getenv("MESH_BENCH_PROFILE")
	for round := 0; round < mpRounds; round++ {
		for _, p := range all {
			for _, proto := range protos {
				if p == mesh && round == 0 && profDir != "" {
					mesh.profile(true, "")
				}
				k := key{p.name, proto, "fixed"}
				runs[k] = append(runs[k], mpLoad(p, proto, port(p, proto), mpFixed, mpFixedConns, mpRate))
				k.phase = "max"
				runs[k] = append(runs[k], mpLoad(p, proto, port(p, proto), mpMax, mpWorkers, 0))
				if p == mesh && round == 0 && profDir != "" {
					if err := mesh.profile(false, filepath.Join(profDir, proto)); err != nil {
						notes = append(notes, "profile: "+err.Error())
					}
				}
			}
			if p.newConn != 0 {
				k := key{p.name, "http1", "newconn"}
				runs[k] = append(runs[k], mpLoad(p, "http1", p.newConn, mpNewConnN, mpFixedConns, mpNewConnRate))
			}
		}
	}
	for k, rs := range runs {
		for _, r := range rs {
			if r.errors > 0 {
				notes = append(notes, fmt.Sprintf("%s %s %s: %d failed requests in a round (first: %s)", k.pair, k.proto, k.phase, r.errors, r.firstErr))
				if k.pair == "nginx pair" {
					for _, side := range []string{"client", "server"} {
						if b, err := os.ReadFile(filepath.Join(certs.dir, "nginx-"+side, "logs", "error.log")); err == nil {
							notes = append(notes, "nginx "+side+" error log: "+tail(string(b)))
						}
					}
				}
				break
			}
		}
	}
	med := func(k key) pxResult { return pxMedian(runs[k]) }
	// spread gives a figure's range over the rounds.
	spread := func(k key, get func(pxResult) float64) string {
		lo, hi := 0.0, 0.0
		for i, r := range runs[k] {
			v := get(r)
			if i == 0 || v < lo {
				lo = v
			}
			if i == 0 || v > hi {
				hi = v
			}
		}
		return fmt.Sprintf("%.3g–%.3g", lo, hi)
	}
	cmd := "go run ./bench -only mtls-pair"
	baseline := func(p *mpPair) bool {
		return p.name != "haproxy pair" && slices.ContainsFunc(pairs, func(q *mpPair) bool { return q.name == "haproxy pair" })
	}
	var rows []Row
	protoName := map[string]string{"http1": "HTTP/1.1", "grpc": "gRPC unary"}
	quantiles := []struct {
		label string
		get   func(pxResult) time.Duration
	}{{"p50", func(r pxResult) time.Duration { return r.p50 }}, {"p90", func(r pxResult) time.Duration { return r.p90 }}, {"p99", func(r pxResult) time.Duration { return r.p99 }}}
	for _, proto := range protos {
		for _, phase := range []struct{ name, label string }{{"fixed", fmt.Sprintf("at %d req/s", mpRate)}, {"max", fmt.Sprintf("at max rate (%d connections, closed loop)", mpWorkers)}} {
			d := med(key{"direct", proto, phase.name})
			for _, q := range quantiles {
				for _, p := range pairs {
					k := key{p.name, proto, phase.name}
					added := q.get(med(k)) - q.get(d)
					row := Row{Figure: fmt.Sprintf("%s %s added latency %s %s (direct %.3f ms; median of %d rounds, pair's %s range %s ms)",
						p.name, protoName[proto], q.label, phase.label, pxMs(q.get(d)), mpRounds, q.label, spread(k, func(r pxResult) float64 { return pxMs(q.get(r)) })),
						Value: pxMs(added), Unit: "ms", Command: cmd}
					if baseline(p) {
						row.Baseline, row.BaselineValue = "haproxy pair", pxMs(q.get(med(key{"haproxy pair", proto, phase.name}))-q.get(d))
						if p == mesh && q.label == "p90" && phase.name == "fixed" {
							row.Target, row.Met = "≤ 1.0× haproxy pair", Check(row.Value <= row.BaselineValue)
						}
					}
					rows = append(rows, row)
				}
			}
			for _, p := range pairs {
				k := key{p.name, proto, phase.name}
				n := mpFixed
				if phase.name == "max" {
					n = mpMax
				}
				per := func(r pxResult) float64 { return r.cpu.Seconds() * 1000 / float64(n) }
				row := Row{Figure: fmt.Sprintf("%s %s CPU seconds (user + system, both proxies) per 1000 requests %s (median of %d rounds, range %s s)", p.name, protoName[proto], phase.label, mpRounds, spread(k, per)),
					Value: per(med(k)), Unit: "s", Command: cmd}
				if baseline(p) {
					row.Baseline, row.BaselineValue = "haproxy pair", per(med(key{"haproxy pair", proto, phase.name}))
					if p == mesh && phase.name == "fixed" {
						row.Target, row.Met = "≤ 1.0× haproxy pair", Check(row.Value <= row.BaselineValue)
					}
				}
				rows = append(rows, row)
				if phase.name == "max" {
					row := Row{Figure: fmt.Sprintf("%s %s throughput at max rate (%d connections; direct %.0f req/s)", p.name, protoName[proto], mpWorkers, med(key{"direct", proto, "max"}).rps),
						Value: med(k).rps, Unit: "req/s", Command: cmd}
					if baseline(p) {
						row.Baseline, row.BaselineValue = "haproxy pair", med(key{"haproxy pair", proto, "max"}).rps
					}
					rows = append(rows, row)
				}
			}
		}
	}
	// Connection setup: the first proxy opens a new TLS connection to the second for every request.
	for _, p := range pairs {
		k := key{p.name, "http1", "newconn"}
		if len(runs[k]) == 0 {
			continue
		}
		r := med(k)
		per := func(r pxResult) float64 { return r.cpu.Seconds() * 1000 / float64(mpNewConnN) }
		for _, f := range []struct {
			label string
			v     float64
			unit  string
			base  func(pxResult) float64
		}{
			{"CPU seconds (both proxies) per 1000 requests", per(r), "s", per},
			{"latency p50", pxMs(r.p50), "ms", func(r pxResult) float64 { return pxMs(r.p50) }},
		} {
			row := Row{Figure: fmt.Sprintf("%s HTTP/1.1, new TLS connection between the proxies per request, at %d req/s: %s (median of %d rounds, range %s)", p.name, mpNewConnRate, f.label, mpRounds, spread(k, f.base)),
				Value: f.v, Unit: f.unit, Command: cmd}
			if baseline(p) {
				row.Baseline, row.BaselineValue = "haproxy pair", f.base(med(key{"haproxy pair", "http1", "newconn"}))
			}
			rows = append(rows, row)
		}
	}
	for _, p := range pairs {
		for i, pid := range p.pids {
			row := Row{Figure: fmt.Sprintf("%s: %s peak RSS (VmHWM) after the load", p.name, p.rssLabels[i]), Value: MiB(pxHWM(pid)), Unit: "MiB", Command: cmd}
			if p == mesh {
				row.Target, row.Met = "< 40 MiB", Check(pxHWM(pid) < 40<<20)
			}
			rows = append(rows, row)
		}
	}
	if len(notes) > 0 {
		return rows, fmt.Errorf("%s", strings.Join(notes, "; "))
	}
	return rows, nil
}

func pxHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mpPorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := pxFreePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// mpAdd starts one proxy of a pair and waits for its ports.
func mpAdd(p *mpPair, label string, ports []int, path string, args ...string) error {
	t, err := pxStart(label, ports[0], path, args...)
	if err != nil {
		return err
	}
	p.pids, p.stops, p.rssLabels = append(p.pids, t.pid), append(p.stops, t.stop), append(p.rssLabels, label)
	for _, port := range ports[1:] {
		ok := false
		for i := 0; i < 100 && !ok; i++ {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				ok = true
			} else {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if !ok {
			return fmt.Errorf("%s did not listen on %d", label, port)
		}
	}
	return nil
}

func indentPEM(b []byte) string { return strconv.Quote(string(b)) }

// mpSecrets are the SDS secrets pilot sends a sidecar: its workload certificate and the mesh root.
func mpSecrets(cert, key, root []byte) string {
	return fmt.Sprintf(`  secrets:
  - name: default
    tls_certificate:
      certificate_chain: {inline_string: %s}
      private_key: {inline_string: %s}
  - name: ROOTCA
    validation_context:
      trusted_ca: {inline_string: %s}
`, indentPEM(cert), indentPEM(key), indentPEM(root))
}

const mpSDS = `{ads: {}, resource_api_version: V3}`

// mpUpstreamTLS is pilot's ISTIO_MUTUAL transport socket.
func mpUpstreamTLS(sni string) string {
	return fmt.Sprintf(`    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: %q
        common_tls_context:
          tls_certificate_sds_secret_configs: [{name: default, sds_config: %s}]
          validation_context_sds_secret_config: {name: ROOTCA, sds_config: %s}
          alpn_protocols: [istio-peer-exchange, istio]
`, sni, mpSDS, mpSDS)
}

func mpHCM(prefix, routes, filters string) string {
	return fmt.Sprintf(`      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %s
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
%s          http_filters:
%s          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`, prefix, routes, filters)
}

func mpRoute(prefix, cluster string) string {
	return fmt.Sprintf("              - {match: {prefix: %q}, route: {cluster: %q}}\n", prefix, cluster)
}

func mpListener(name string, port int, body string) string {
	return fmt.Sprintf(`  - name: %s
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
%s`, name, port, body)
}

func mpCluster(name string, port int, h2 bool, maxRq int, extra string) string {
	var opts string
	if h2 || maxRq > 0 {
		proto := "http_protocol_options: {}"
		if h2 {
			proto = "http2_protocol_options: {}"
		}
		common := ""
		if maxRq > 0 {
			common = fmt.Sprintf("\n        common_http_protocol_options: {max_requests_per_connection: %d}", maxRq)
		}
		opts = fmt.Sprintf(`    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {%s}%s
`, proto, common)
	}
	return fmt.Sprintf(`  - name: %q
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: %q
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
%s%s`, name, name, port, opts, extra)
}

func mpStartMesh(env *Env, c *mpCerts, upH1, upG int) (*mpPair, error) {
	bin := env.Bin("mesh-proxy")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run make build", bin)
	}
	ports, err := mpPorts(4) // client h1, client grpc, client new-conn, server inbound
	if err != nil {
		return nil, err
	}
	inbound := ports[3]
	p := &mpPair{name: "mesh-proxy pair", h1: ports[0], grpc: ports[1], newConn: ports[2]}

	// Client sidecar: outbound listeners and 1,000 ISTIO_MUTUAL clusters, three of them used.
	var b strings.Builder
	fmt.Fprintf(&b, "node: {id: \"sidecar~127.0.0.1~sleep-1.default~default.svc.cluster.local\"}\nstatic_resources:\n")
	b.WriteString(mpSecrets(c.clientCert, c.clientKey, c.root))
	b.WriteString("  listeners:\n")
	b.WriteString(mpListener("outbound_http", ports[0], mpHCM("outbound_0.0.0.0_80", mpRoute("/", "outbound|80||app.default.svc.cluster.local"), "")))
	b.WriteString(mpListener("outbound_grpc", ports[1], mpHCM("outbound_0.0.0.0_9090", mpRoute("/", "outbound|9090||app.default.svc.cluster.local"), "")))
	b.WriteString(mpListener("outbound_newconn", ports[2], mpHCM("outbound_0.0.0.0_81", mpRoute("/", "outbound|81||app.default.svc.cluster.local"), "")))
	b.WriteString("  clusters:\n")
	b.WriteString(mpCluster("outbound|80||app.default.svc.cluster.local", inbound, false, 0, mpUpstreamTLS("outbound_.80_._.app.default.svc.cluster.local")))
	b.WriteString(mpCluster("outbound|9090||app.default.svc.cluster.local", inbound, true, 0, mpUpstreamTLS("outbound_.9090_._.app.default.svc.cluster.local")))
	b.WriteString(mpCluster("outbound|81||app.default.svc.cluster.local", inbound, false, 1, mpUpstreamTLS("outbound_.81_._.app.default.svc.cluster.local")))
	for i := 3; i < mpClusters; i++ {
		name := fmt.Sprintf("outbound|80||svc-%d.default.svc.cluster.local", i)
		b.WriteString(mpCluster(name, inbound, false, 0, mpUpstreamTLS(fmt.Sprintf("outbound_.80_._.svc-%d.default.svc.cluster.local", i))))
	}
	cb := filepath.Join(c.dir, "mesh-client.yaml")
	if err := os.WriteFile(cb, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}

	// Server sidecar: one inbound listener terminating mesh mTLS, RBAC allowing the caller, routes to the app.
	rbac := fmt.Sprintf(`          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  ns[default]-policy[allow-sleep]-rule[0]:
                    permissions: [{any: true}]
                    principals: [{authenticated: {principal_name: {exact: %q}}}]
`, ca.SPIFFEID("default", mpClientSA))
	b.Reset()
	fmt.Fprintf(&b, "node: {id: \"sidecar~127.0.0.1~app-1.default~default.svc.cluster.local\"}\nstatic_resources:\n")
	b.WriteString(mpSecrets(c.serverCert, c.serverKey, c.root))
	b.WriteString("  listeners:\n")
	b.WriteString(mpListener("virtualInbound", inbound, mpHCM("inbound_0.0.0.0_80",
		mpRoute("/grpc.", "inbound|9090||")+mpRoute("/", "inbound|80||"), rbac)))
	fmt.Fprintf(&b, `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificate_sds_secret_configs: [{name: default, sds_config: %s}]
            validation_context_sds_secret_config: {name: ROOTCA, sds_config: %s}
            alpn_protocols: [h2, http/1.1]
`, mpSDS, mpSDS)
	b.WriteString("  clusters:\n")
	b.WriteString(mpCluster("inbound|80||", upH1, false, 0, ""))
	b.WriteString(mpCluster("inbound|9090||", upG, true, 0, ""))
	sb := filepath.Join(c.dir, "mesh-server.yaml")
	if err := os.WriteFile(sb, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	args := func(bs, side string) []string {
		stats, _ := pxFreePort()
		admin, _ := pxFreePort()
		p.admins, p.profs = append(p.admins, admin), append(p.profs, filepath.Join(c.dir, side+".prof"))
		// Istio metrics are recorded on every request; the stats port serves them.
		// The admin API writes CPU profiles (/cpuprofiler) to profile_path when MESH_BENCH_PROFILE asks.
		return []string{"--bootstrap", bs, "--admin-address", fmt.Sprintf("127.0.0.1:%d", admin), "--health-address", "", "--stats-address", fmt.Sprintf("127.0.0.1:%d", stats),
			"--config-yaml", fmt.Sprintf("admin: {profile_path: %q}", p.profs[len(p.profs)-1]),
			"--log-level", "warn", "--memory-limit-mib", strconv.Itoa(pxMemLimitMiB), "--concurrency", strconv.Itoa(pxConcurrency)}
	}
	if err := mpAdd(p, "server sidecar ("+pxSidecarConfig+")", []int{inbound}, bin, args(sb, "server")...); err != nil {
		p.stop()
		return nil, err
	}
	if err := mpAdd(p, fmt.Sprintf("client sidecar with %d clusters (%s)", mpClusters, pxSidecarConfig), ports[:3], bin, args(cb, "client")...); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func mpStartHAProxy(c *mpCerts, upH1, upG int) (*mpPair, error) {
	path, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install -y haproxy) — skipped")
	}
	ports, err := mpPorts(5) // client h1, grpc, new-conn; server h1, grpc
	if err != nil {
		return nil, err
	}
	p := &mpPair{name: "haproxy pair", h1: ports[0], grpc: ports[1], newConn: ports[2]}
	root := c.file("root.pem", c.root)
	cli := c.file("client-haproxy.pem", c.clientCert, c.clientKey)
	srv := c.file("server-haproxy.pem", c.serverCert, c.serverKey)
	const head = `global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
`
	client := head + fmt.Sprintf(`frontend h1
  bind 127.0.0.1:%[1]d
  default_backend h1
frontend grpc
  bind 127.0.0.1:%[2]d proto h2
  default_backend grpc
frontend newconn
  bind 127.0.0.1:%[3]d
  default_backend newconn
backend h1
  http-reuse always
  server b 127.0.0.1:%[4]d ssl crt %[6]s ca-file %[7]s verify required alpn http/1.1
backend grpc
  http-reuse always
  server b 127.0.0.1:%[5]d ssl crt %[6]s ca-file %[7]s verify required alpn h2
backend newconn
  option http-server-close
  http-reuse never
  server b 127.0.0.1:%[4]d ssl crt %[6]s ca-file %[7]s verify required alpn http/1.1
`, ports[0], ports[1], ports[2], ports[3], ports[4], cli, root)
	server := head + fmt.Sprintf(`frontend h1
  bind 127.0.0.1:%[1]d ssl crt %[3]s ca-file %[4]s verify required alpn http/1.1
  default_backend h1
frontend grpc
  bind 127.0.0.1:%[2]d ssl crt %[3]s ca-file %[4]s verify required alpn h2
  default_backend grpc
backend h1
  server up 127.0.0.1:%[5]d
backend grpc
  server up 127.0.0.1:%[6]d proto h2
`, ports[3], ports[4], srv, root, upH1, upG)
	sp, cp := c.file("haproxy-server.cfg", []byte(server)), c.file("haproxy-client.cfg", []byte(client))
	if err := mpAdd(p, "server haproxy (nbthread 1)", ports[3:], path, "-f", sp, "-db"); err != nil {
		p.stop()
		return nil, err
	}
	if err := mpAdd(p, "client haproxy (nbthread 1)", ports[:3], path, "-f", cp, "-db"); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func mpStartNginx(c *mpCerts, upH1, upG int) (*mpPair, error) {
	path, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install -y nginx) — skipped")
	}
	ports, err := mpPorts(5)
	if err != nil {
		return nil, err
	}
	p := &mpPair{name: "nginx pair", h1: ports[0], grpc: ports[1], newConn: ports[2]}
	root := c.file("root.pem", c.root)
	cliC, cliK := c.file("client.crt", c.clientCert), c.file("client.key", c.clientKey)
	srvC, srvK := c.file("server.crt", c.serverCert), c.file("server.key", c.serverKey)
	conf := func(name, body string) (string, string) {
		nd := filepath.Join(c.dir, "nginx-"+name)
		os.MkdirAll(filepath.Join(nd, "logs"), 0o755)
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
%[2]s}
`, nd, body)
		f := filepath.Join(nd, "nginx.conf")
		os.WriteFile(f, []byte(cfg), 0o644)
		return nd, f
	}
	tlsOut := fmt.Sprintf("ssl_certificate %s; ssl_certificate_key %s; ssl_session_reuse on;", cliC, cliK)
	client := fmt.Sprintf(`  upstream b1 { server 127.0.0.1:%[4]d; keepalive 64; }
  upstream bg { server 127.0.0.1:%[5]d; keepalive 64; }
  upstream bn { server 127.0.0.1:%[4]d; }
  server { listen 127.0.0.1:%[1]d; location / { proxy_pass https://b1; proxy_http_version 1.1; proxy_set_header Connection ""; %[6]s } }
  server { listen 127.0.0.1:%[2]d http2; location / { grpc_pass grpcs://bg; %[7]s } }
  server { listen 127.0.0.1:%[3]d; location / { proxy_pass https://bn; proxy_http_version 1.1; %[6]s } }
`, ports[0], ports[1], ports[2], ports[3], ports[4], strings.ReplaceAll(tlsOut, "ssl_", "proxy_ssl_"), strings.ReplaceAll(tlsOut, "ssl_", "grpc_ssl_"))
	tlsIn := fmt.Sprintf("ssl_certificate %s; ssl_certificate_key %s; ssl_client_certificate %s; ssl_verify_client on;", srvC, srvK, root)
	server := fmt.Sprintf(`  upstream u1 { server 127.0.0.1:%[3]d; keepalive 64; }
  upstream ug { server 127.0.0.1:%[4]d; keepalive 64; }
  server { listen 127.0.0.1:%[1]d ssl; %[5]s location / { proxy_pass http://u1; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:%[2]d ssl http2; %[5]s location / { grpc_pass grpc://ug; } }
`, ports[3], ports[4], upH1, upG, tlsIn)
	snd, sf := conf("server", server)
	cnd, cf := conf("client", client)
	if err := mpAdd(p, "server nginx (1 worker)", ports[3:], path, "-p", snd, "-c", sf); err != nil {
		p.stop()
		return nil, err
	}
	if err := mpAdd(p, "client nginx (1 worker)", ports[:3], path, "-p", cnd, "-c", cf); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}
