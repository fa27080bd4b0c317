package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// The observability benchmark asks what access logs, Istio's metrics and 1%
// tracing cost the proxy bench path (#18: at most 1.15× the CPU per 1000
// requests of the same run with them off): the proxy bench's load through
// one mesh-proxy binary configured twice, as pilot configures a sidecar's
// outbound HCM with the mesh's telemetry on (a file access log in Istio's
// text format, istio.metadata_exchange and istio.stats filters, an
// OpenTelemetry tracer sampling 1% and exporting to a real OTLP/gRPC
// receiver on loopback) and with it off. Rounds interleave the two; CPU is
// read from the threads' schedstat as in the filter-chain benchmark.
func init() {
	register(Bench{Name: "proxyobs", Issue: 18, Run: runProxyObsBench})
}

const obsRounds = 11

// The telemetry pilot writes on a sidecar's outbound HCM (stats.PluginConfig empty: every standard metric).
const obsFilters = `          - name: istio.metadata_exchange
            typed_config:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: type.googleapis.com/io.istio.http.peer_metadata.Config
              value:
                upstream_discovery: [{istio_headers: {}}, {workload_discovery: {}}]
                upstream_propagation: [{istio_headers: {}}]
`

const obsStats = `          - name: istio.stats
            typed_config: {"@type": type.googleapis.com/stats.PluginConfig}
`

func runProxyObsBench(env *Env) ([]Row, error) {
	upPort, stopUp, err := pcUpstream()
	if err != nil {
		return nil, err
	}
	defer stopUp()
	otlpPort, spans, stopOTLP, err := obsOTLP()
	if err != nil {
		return nil, err
	}
	defer stopOTLP()
	dir, err := os.MkdirTemp("", "mesh-bench-proxyobs")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := env.Bin("mesh-proxy")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run make build", bin)
	}
	off, err := obsStart(bin, "mesh-proxy, telemetry off", dir, upPort, otlpPort, false)
	if err != nil {
		return nil, err
	}
	defer off.stop()
	on, err := obsStart(bin, "mesh-proxy, access log + Istio metrics + 1% tracing", dir, upPort, otlpPort, true)
	if err != nil {
		return nil, err
	}
	defer on.stop()
	targets := []*pxTarget{off, on}
	fixedRuns, maxRuns := map[string][]pxResult{}, map[string][]pxResult{}
	for _, t := range targets {
		pxMaxLoad(t, 2000)
	}
	for round := 0; round < obsRounds; round++ {
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
	const cmd = "go run ./bench -only proxyobs"
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
		row := Row{Figure: fmt.Sprintf("%s (%s): CPU seconds per 1000 requests %s (median; %s)", on.name, pxSidecarConfig, phase.label, spread(on)),
			Value: per(on), Unit: "s", Baseline: off.name + " (" + spread(off) + ")", BaselineValue: per(off), Target: "≤ 1.15× off", Command: cmd}
		row.Met = Check(row.Value <= 1.15*row.BaselineValue)
		rows = append(rows, row)
		for _, t := range targets {
			for _, r := range phase.runs[t.name] {
				if r.errors > 0 {
					notes = append(notes, fmt.Sprintf("%s: %d failed requests in a round (first: %s)", t.name, r.errors, r.firstErr))
				}
			}
		}
	}
	if spans.Load() == 0 {
		notes = append(notes, "the OTLP receiver got no spans: tracing was not on")
	}
	if len(notes) > 0 {
		return rows, fmt.Errorf("%s", strings.Join(notes, "; "))
	}
	return rows, nil
}

// obsReceiver is an OTLP/gRPC trace receiver counting spans.
type obsReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	spans *atomic.Int64
}

func (o obsReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			o.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func obsOTLP() (int, *atomic.Int64, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, nil, err
	}
	n := &atomic.Int64{}
	s := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(s, obsReceiver{spans: n})
	go s.Serve(ln)
	return ln.Addr().(*net.TCPAddr).Port, n, s.Stop, nil
}

// obsStart runs mesh-proxy as the proxy bench does, with the mesh's telemetry on or off.
func obsStart(bin, name, dir string, upPort, otlpPort int, on bool) (*pxTarget, error) {
	port, err := pxFreePort()
	if err != nil {
		return nil, err
	}
	filters, hcmExtra := "", ""
	if on {
		filters = obsFilters + obsStats
		hcmExtra = fmt.Sprintf(`          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %s
          tracing:
            random_sampling: {value: 1}
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                grpc_service: {envoy_grpc: {cluster_name: otel}}
                service_name: bench.default
`, filepath.Join(dir, fmt.Sprintf("access-%d.log", port)))
	}
	cfg := fmt.Sprintf(`node: {id: "sidecar~127.0.0.1~bench-1.default~default.svc.cluster.local"}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    traffic_direction: OUTBOUND
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
%s          route_config:
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
  - name: otel
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: otel
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
`, port, hcmExtra, filters, upPort, otlpPort)
	bs := filepath.Join(dir, fmt.Sprintf("mesh-proxy-%d.yaml", port))
	if err := os.WriteFile(bs, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return pxStart(name, port, bin, "--bootstrap", bs, "--admin-address", "127.0.0.1:0", "--health-address", "", "--stats-address", "",
		"--log-level", "warn", "--memory-limit-mib", strconv.Itoa(pxMemLimitMiB), "--concurrency", strconv.Itoa(pxConcurrency))
}
