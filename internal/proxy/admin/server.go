package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/config"
	"mesh.dev/mesh/internal/proxy/listener"
	"mesh.dev/mesh/internal/proxy/logging"
	"mesh.dev/mesh/internal/proxy/tracing"
	"mesh.dev/mesh/internal/version"
)

// State is the server state /server_info and /ready report.
type State func() adminv3.ServerInfo_State

// Server is the admin API.
type Server struct {
	Store     *config.Store
	Listeners *listener.Manager
	Node      *corev3.Node
	Started   time.Time
	State     State
	Loggers   *logging.Registry // named loggers /logging lists and sets; nil means logging.Default
	Level     *slog.LevelVar    // optional: kept in step with /logging?level= for an embedder's own handler
	Quit      func()
	Gatherer  prometheus.Gatherer // extra metrics (istio_*) for /stats/prometheus
	Extra     func() []cluster.Stat
	// Keep is the bootstrap's stats_config.stats_matcher: stats it refuses are not shown (nil: all are).
	Keep func(name string) bool
	// ProfilePath is the bootstrap's admin.profile_path, where /cpuprofiler writes ("": Envoy's default).
	ProfilePath string
	prof        cpuProfiler
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true}

// Handler returns the admin mux.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", s.configDump)
	mux.HandleFunc("/clusters", s.clusters)
	mux.HandleFunc("/listeners", s.listeners)
	mux.HandleFunc("/stats", s.stats)
	mux.HandleFunc("/stats/prometheus", s.prometheus)
	mux.HandleFunc("/server_info", s.serverInfo)
	mux.HandleFunc("/ready", s.ready)
	mux.HandleFunc("/logging", s.logging)
	mux.HandleFunc("/quitquitquit", s.quit)
	mux.HandleFunc("/cpuprofiler", s.cpuprofiler)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "admin commands are:\n  /clusters\n  /config_dump\n  /cpuprofiler\n  /listeners\n  /logging\n  /quitquitquit\n  /ready\n  /server_info\n  /stats\n  /stats/prometheus\n")
	})
	return mux
}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// Re-indent: protojson randomises its whitespace on purpose; Envoy's dump is stable two-space JSON.
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out.WriteByte('\n')
	w.Header().Set("Content-Type", "application/json")
	w.Write(out.Bytes())
}

func (s *Server) configDump(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, eds := q["include_eds"]
	d := ConfigDump(s.Store.Load(), eds)
	d, err := Filter(d, q.Get("resource"), q.Get("mask"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeProto(w, d)
}

func (s *Server) clusters(w http.ResponseWriter, r *http.Request) {
	snap := s.Store.Load()
	if r.URL.Query().Get("format") == "json" {
		out := &adminv3.Clusters{}
		for _, res := range snap.List(config.ClusterType) {
			c := res.Compiled.(*cluster.Cluster)
			cs := &adminv3.ClusterStatus{Name: c.Name, ObservabilityName: c.Name, AddedViaApi: !res.Static}
			for _, h := range c.Hosts() {
				total, failed := h.Counts()
				hs := &adminv3.HostStatus{
					Address: socketAddr(h.Addr),
					Stats: []*adminv3.SimpleMetric{
						{Name: "rq_total", Value: total, Type: adminv3.SimpleMetric_COUNTER},
						{Name: "rq_error", Value: failed, Type: adminv3.SimpleMetric_COUNTER},
						{Name: "rq_active", Value: uint64(max(h.Active(), 0)), Type: adminv3.SimpleMetric_GAUGE},
					},
					HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY},
					Weight:       h.Weight,
					Priority:     h.Priority,
				}
				switch h.HealthFlags() {
				case "healthy":
				default:
					hs.HealthStatus.FailedActiveHealthCheck = strings.Contains(h.HealthFlags(), "failed_active_hc")
					hs.HealthStatus.FailedOutlierCheck = strings.Contains(h.HealthFlags(), "failed_outlier_check")
					if strings.Contains(h.HealthFlags(), "eds_status_unhealthy") {
						hs.HealthStatus.EdsHealthStatus = corev3.HealthStatus_UNHEALTHY
					}
				}
				cs.HostStatuses = append(cs.HostStatuses, hs)
			}
			out.ClusterStatuses = append(out.ClusterStatuses, cs)
		}
		writeProto(w, out)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	var b strings.Builder
	for _, res := range snap.List(config.ClusterType) {
		c := res.Compiled.(*cluster.Cluster)
		fmt.Fprintf(&b, "%s::observability_name::%s\n", c.Name, c.Name)
		fmt.Fprintf(&b, "%s::added_via_api::%t\n", c.Name, !res.Static)
		for _, h := range c.Hosts() {
			total, failed := h.Counts()
			fmt.Fprintf(&b, "%s::%s::rq_active::%d\n", c.Name, h.Addr, h.Active())
			fmt.Fprintf(&b, "%s::%s::rq_error::%d\n", c.Name, h.Addr, failed)
			fmt.Fprintf(&b, "%s::%s::rq_total::%d\n", c.Name, h.Addr, total)
			fmt.Fprintf(&b, "%s::%s::health_flags::%s\n", c.Name, h.Addr, h.HealthFlags())
			fmt.Fprintf(&b, "%s::%s::weight::%d\n", c.Name, h.Addr, h.Weight)
			fmt.Fprintf(&b, "%s::%s::priority::%d\n", c.Name, h.Addr, h.Priority)
			fmt.Fprintf(&b, "%s::%s::locality::%s\n", c.Name, h.Addr, h.Locality)
		}
	}
	io.WriteString(w, b.String())
}

func socketAddr(hostport string) *corev3.Address {
	i := strings.LastIndexByte(hostport, ':')
	host, port := strings.Trim(hostport[:max(i, 0)], "[]"), hostport[i+1:]
	p, _ := strconv.Atoi(port)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

func (s *Server) listeners(w http.ResponseWriter, r *http.Request) {
	bound := s.Listeners.Listeners()
	names := make([]string, 0, len(bound))
	for n := range bound {
		names = append(names, n)
	}
	sort.Strings(names)
	if r.URL.Query().Get("format") == "json" {
		out := &adminv3.Listeners{}
		for _, n := range names {
			out.ListenerStatuses = append(out.ListenerStatuses, &adminv3.ListenerStatus{Name: n, LocalAddress: socketAddr(bound[n])})
		}
		writeProto(w, out)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	for _, n := range names {
		fmt.Fprintf(w, "%s::%s\n", n, bound[n])
	}
}

// statList gathers Envoy-style stats: cluster.*, listener.*, http.*, server.*.
func (s *Server) statList() []cluster.Stat {
	snap := s.Store.Load()
	var out []cluster.Stat
	for _, res := range snap.List(config.ClusterType) {
		c := res.Compiled.(*cluster.Cluster)
		for _, st := range c.StatList() {
			out = append(out, cluster.Stat{Name: "cluster." + c.Name + "." + st.Name, Value: st.Value})
		}
	}
	for _, res := range snap.List(config.ListenerType) {
		l := res.Compiled.(*listener.Listener)
		out = append(out,
			cluster.Stat{Name: "listener." + l.Addr + ".downstream_cx_total", Value: l.Stats.CxTotal.Load()},
			cluster.Stat{Name: "listener." + l.Addr + ".downstream_cx_active", Value: l.Stats.CxActive.Load()},
			cluster.Stat{Name: "listener." + l.Addr + ".no_filter_chain_match", Value: l.Stats.CxNoChain.Load()},
			cluster.Stat{Name: "listener." + l.Addr + ".ssl.connection_error", Value: l.Stats.TLSError.Load()},
			cluster.Stat{Name: "listener." + l.Addr + ".ssl.handshake", Value: l.Stats.SSLHandshake.Load()},
			cluster.Stat{Name: "listener." + l.Addr + ".ssl.session_reused", Value: l.Stats.SSLReused.Load()},
		)
		for _, g := range l.GenericProxies() {
			for _, st := range g.StatList() {
				out = append(out, cluster.Stat{Name: st.Name, Value: st.Value})
			}
		}
		for _, h := range l.HCMs() {
			p := "http." + h.StatPrefix + "."
			st := h.Stats
			out = append(out,
				cluster.Stat{Name: p + "downstream_rq_total", Value: st.RqTotal.Load()},
				cluster.Stat{Name: p + "downstream_rq_2xx", Value: st.Rq2xx.Load()},
				cluster.Stat{Name: p + "downstream_rq_3xx", Value: st.Rq3xx.Load()},
				cluster.Stat{Name: p + "downstream_rq_4xx", Value: st.Rq4xx.Load()},
				cluster.Stat{Name: p + "downstream_rq_5xx", Value: st.Rq5xx.Load()},
				cluster.Stat{Name: p + "no_route", Value: st.NoRoute.Load()},
				cluster.Stat{Name: p + "no_cluster", Value: st.NoCluster.Load()},
				cluster.Stat{Name: p + "downstream_rq_timeout", Value: st.RqTimeout.Load()},
				cluster.Stat{Name: p + "downstream_rq_failed_path_normalization", Value: st.FailedPathNormalization.Load()},
				cluster.Stat{Name: p + "downstream_rq_redirected_with_normalized_path", Value: st.RedirectedNormalizedPath.Load()},
			)
			for _, c := range h.FilterStats() {
				out = append(out, cluster.Stat{Name: c.Name, Value: c.Value.Load()})
			}
		}
	}
	state := int64(0)
	if s.State != nil {
		state = int64(s.State())
	}
	out = append(out,
		cluster.Stat{Name: "server.live", Value: b2i(state == int64(adminv3.ServerInfo_LIVE))},
		cluster.Stat{Name: "server.state", Value: state},
		cluster.Stat{Name: "server.uptime", Value: int64(time.Since(s.Started).Seconds())},
		// Envoy's OpenTelemetry tracer counts spans_sent; spans_dropped is
		// ours: spans the bounded export queue or a failed export lost.
		cluster.Stat{Name: "tracing.opentelemetry.spans_sent", Value: tracing.Exported.Load()},
		cluster.Stat{Name: "tracing.opentelemetry.spans_dropped", Value: tracing.Dropped.Load()},
		cluster.Stat{Name: "tracing.zipkin.spans_sent", Value: tracing.ZipkinSent.Load()},
		cluster.Stat{Name: "tracing.zipkin.spans_dropped", Value: tracing.ZipkinDropped.Load()},
	)
	for _, t := range []string{config.ClusterType, config.ListenerType} {
		short := map[string]string{config.ClusterType: "cluster_manager.cds", config.ListenerType: "listener_manager.lds"}[t]
		out = append(out, cluster.Stat{Name: short + ".version_text_present", Value: b2i(snap.Version(t) != "")})
	}
	if s.Extra != nil {
		out = append(out, s.Extra()...)
	}
	if s.Keep != nil {
		kept := out[:0]
		for _, st := range out {
			if s.Keep(st.Name) {
				kept = append(kept, st)
			}
		}
		out = kept
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	list := s.statList()
	filter := r.URL.Query().Get("filter")
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{\"stats\":[")
		first := true
		for _, st := range list {
			if filter != "" && !strings.Contains(st.Name, filter) {
				continue
			}
			if !first {
				io.WriteString(w, ",")
			}
			first = false
			fmt.Fprintf(w, "{\"name\":%q,\"value\":%d}", st.Name, st.Value)
		}
		io.WriteString(w, "]}\n")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	for _, st := range list {
		if filter != "" && !strings.Contains(st.Name, filter) {
			continue
		}
		fmt.Fprintf(w, "%s: %d\n", st.Name, st.Value)
	}
}

// prometheus renders Envoy's stats with Envoy's Prometheus naming
// (envoy_cluster_x{envoy_cluster_name=...}) and the extra metrics.
func (s *Server) prometheus(w http.ResponseWriter, r *http.Request) {
	format := expfmt.Negotiate(r.Header)
	w.Header().Set("Content-Type", string(format))
	mfs, _ := s.Gather()
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range mfs {
		enc.Encode(mf)
	}
	if c, ok := enc.(expfmt.Closer); ok {
		c.Close()
	}
}

// PrometheusHandler serves what the admin /stats/prometheus does (the
// proxy's Prometheus port, Istio's 15090, serves it too).
func (s *Server) PrometheusHandler() http.Handler { return http.HandlerFunc(s.prometheus) }

// Gather implements prometheus.Gatherer: Envoy's stats as gauges of
// Envoy's Prometheus names, one family per name, then the extra metrics.
func (s *Server) Gather() ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	byName := map[string]*dto.MetricFamily{}
	for _, st := range s.statList() {
		name, label, value := promName(st.Name)
		mf := byName[name]
		if mf == nil {
			mf = &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
			byName[name] = mf
			out = append(out, mf)
		}
		m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(float64(st.Value))}}
		if label != "" {
			m.Label = []*dto.LabelPair{{Name: proto.String(label), Value: proto.String(value)}}
		}
		mf.Metric = append(mf.Metric, m)
	}
	if s.Gatherer != nil {
		mfs, err := s.Gatherer.Gather()
		out = append(out, mfs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func promName(stat string) (name, label, value string) {
	for _, p := range []struct{ prefix, label string }{{"cluster.", "envoy_cluster_name"}, {"listener.", "envoy_listener_address"}, {"http.", "envoy_http_conn_manager_prefix"}} {
		if !strings.HasPrefix(stat, p.prefix) {
			continue
		}
		rest := stat[len(p.prefix):]
		// The tag is everything up to the metric's own name: the last dot-free run of known suffixes.
		i := tagEnd(rest)
		tag, metric := rest[:i], rest[i+1:]
		return sanitize("envoy_" + strings.TrimSuffix(p.prefix, ".") + "_" + metric), p.label, tag
	}
	return sanitize("envoy_" + stat), "", ""
}

// tagEnd finds where the tag value (which may contain dots, e.g. service names) ends.
func tagEnd(rest string) int {
	for _, suffix := range []string{".outlier_detection.", ".health_check.", ".fault.", ".rbac.", ".ssl."} {
		if i := strings.LastIndex(rest, suffix); i >= 0 {
			return i
		}
	}
	return strings.LastIndexByte(rest, '.')
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func (s *Server) serverInfo(w http.ResponseWriter, r *http.Request) {
	state := adminv3.ServerInfo_LIVE
	if s.State != nil {
		state = s.State()
	}
	up := durationpb.New(time.Since(s.Started).Truncate(time.Second))
	writeProto(w, &adminv3.ServerInfo{
		Version:            "mesh-proxy/" + version.Get().Version,
		State:              state,
		HotRestartVersion:  "disabled",
		UptimeCurrentEpoch: up,
		UptimeAllEpochs:    up,
		CommandLineOptions: &adminv3.CommandLineOptions{},
		Node:               s.Node,
	})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	state := adminv3.ServerInfo_LIVE
	if s.State != nil {
		state = s.State()
	}
	if state != adminv3.ServerInfo_LIVE {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	io.WriteString(w, state.String()+"\n")
}

// logging lists the named loggers and their levels; with POST it first
// applies ?level=L (every logger) and ?LOGGER=L (one logger), as Envoy does.
// A bad name or level rejects the whole request, so nothing changes half-way.
func (s *Server) logging(w http.ResponseWriter, r *http.Request) {
	reg := s.Loggers
	if reg == nil {
		reg = logging.Default
	}
	q := r.URL.Query()
	if len(q) > 0 {
		if r.Method != http.MethodPost {
			http.Error(w, "This endpoint requires POST", http.StatusMethodNotAllowed)
			return
		}
		all, each, err := parseLogging(q, reg)
		if err != nil {
			http.Error(w, err.Error()+"\nusage: POST /logging?level=LEVEL (every logger) or /logging?LOGGER=LEVEL; levels: "+strings.Join(logging.LevelNames(), ", "), http.StatusBadRequest)
			return
		}
		if all != nil {
			reg.SetAll(*all)
			if s.Level != nil {
				s.Level.Set(slogLevel(*all))
			}
		}
		for _, n := range sortedKeys(each) {
			reg.Set(n, each[n]) // names were checked by parseLogging
		}
	}
	levels := reg.Levels()
	var b strings.Builder
	b.WriteString("active loggers:\n")
	for _, n := range sortedKeys(levels) {
		fmt.Fprintf(&b, "  %s: %s\n", n, levels[n])
	}
	io.WriteString(w, b.String())
}

// parseLogging checks every parameter of a /logging request before any is applied.
func parseLogging(q url.Values, reg *logging.Registry) (all *logging.Level, each map[string]logging.Level, err error) {
	known := reg.Levels()
	each = map[string]logging.Level{}
	for _, name := range sortedKeys(q) {
		vals := q[name]
		if len(vals) != 1 {
			return nil, nil, fmt.Errorf("parameter %q given %d times; give it once", name, len(vals))
		}
		lvl, err := logging.ParseLevel(vals[0])
		if err != nil {
			return nil, nil, fmt.Errorf("parameter %q: %w", name, err)
		}
		if name == "level" {
			all = &lvl
			continue
		}
		if _, ok := known[name]; !ok {
			return nil, nil, fmt.Errorf("unknown logger %q: known loggers are %s", name, strings.Join(sortedKeys(known), ", "))
		}
		each[name] = lvl
	}
	return all, each, nil
}

func slogLevel(l logging.Level) slog.Level {
	switch l {
	case logging.Trace, logging.Debug:
		return slog.LevelDebug
	case logging.Info:
		return slog.LevelInfo
	case logging.Warning:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Server) quit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "This endpoint requires POST", http.StatusMethodNotAllowed)
		return
	}
	io.WriteString(w, "OK\n")
	if s.Quit != nil {
		go s.Quit()
	}
}
