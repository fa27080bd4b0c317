package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"mesh.dev/mesh/internal/proxy/accesslog"
	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/config"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/pathnorm"
	"mesh.dev/mesh/internal/proxy/protofields"
	"mesh.dev/mesh/internal/proxy/router"
	"mesh.dev/mesh/internal/proxy/tracing"
)

// HCM is a compiled HttpConnectionManager.
type HCM struct {
	StatPrefix string
	listener   *Listener
	env        *Env
	rdsName    string
	inline     *router.Table
	filters    *httpfilter.Chain
	codec      hcmv3.HttpConnectionManager_CodecType
	upgrades   map[string]bool // upgrade_configs: type (lower case) → enabled
	useRemote  bool
	xfcc       hcmv3.HttpConnectionManager_ForwardClientCertDetails
	idle       time.Duration
	path       pathnorm.Options // normalize_path, merge_slashes, path_with_escaped_slashes_action
	logs       []*accesslog.Logger
	tracer     *tracing.Tracer // nil: trace headers are propagated without spans
	proxy      *httputil.ReverseProxy
	Stats      *HTTPStats
	draining   atomic.Bool // set when the listener is replaced or the proxy drains
}

func compileHCM(h *hcmv3.HttpConnectionManager, f string, env *Env, l *Listener) (*HCM, error) {
	// The fields compileHCM acts on; anything else is refused by name.
	if err := protofields.Check(h, f, "stat_prefix", "codec_type", "rds", "route_config", "http_filters", "tracing",
		"http3_protocol_options", "upgrade_configs", "common_http_protocol_options", "access_log", "use_remote_address",
		"forward_client_cert_details", "normalize_path", "merge_slashes", "path_with_escaped_slashes_action"); err != nil {
		return nil, err
	}
	if o := h.GetCommonHttpProtocolOptions(); o != nil {
		if err := protofields.Check(o, f+".common_http_protocol_options", "idle_timeout"); err != nil {
			return nil, err
		}
	}
	path, err := pathnorm.FromHCM(h, f)
	if err != nil {
		return nil, err
	}
	m := &HCM{path: path, StatPrefix: h.GetStatPrefix(), listener: l, env: env, codec: h.GetCodecType(), useRemote: h.GetUseRemoteAddress().GetValue(),
		xfcc: h.GetForwardClientCertDetails(), Stats: &HTTPStats{}}
	switch rs := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if cs := rs.Rds.GetConfigSource(); cs != nil && cs.GetAds() == nil {
			return nil, fmt.Errorf("%s.rds.config_source: only ads is supported", f)
		}
		m.rdsName = rs.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_RouteConfig:
		t, err := router.CompileWith(rs.RouteConfig, env.Filters.RouteOptions())
		if err != nil {
			return nil, fmt.Errorf("%s.route_config: %w", f, err)
		}
		m.inline = t
	default:
		return nil, fmt.Errorf("%s: route specifier %T is not supported (use rds or route_config)", f, rs)
	}
	if m.codec == hcmv3.HttpConnectionManager_HTTP3 {
		return nil, fmt.Errorf("%s.codec_type: HTTP3 is not supported", f)
	}
	if t := h.GetTracing(); t != nil {
		dir := ""
		if l != nil {
			dir = l.Direction
		}
		if m.tracer, err = tracing.Compile(t, f+".tracing", dir, env.Store, env.ServiceName, env.dialCluster); err != nil {
			return nil, err
		}
	}
	if h.GetHttp3ProtocolOptions() != nil {
		return nil, fmt.Errorf("%s.http3_protocol_options: not supported", f)
	}
	for i, u := range h.GetUpgradeConfigs() {
		uf := fmt.Sprintf("%s.upgrade_configs[%d]", f, i)
		if err := protofields.Check(u, uf, "upgrade_type", "enabled"); err != nil {
			return nil, err
		}
		typ, err := router.UpgradeType(u.GetUpgradeType())
		if err != nil {
			return nil, fmt.Errorf("%s.upgrade_type: %w", uf, err)
		}
		if m.upgrades == nil {
			m.upgrades = map[string]bool{}
		}
		m.upgrades[typ] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	if d := h.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
		m.idle = d.AsDuration()
	}
	if m.filters, err = env.Filters.Compile(h.GetHttpFilters(), f, httpfilter.Env{Runtime: env.Runtime, StatPrefix: "http." + m.StatPrefix + ".", Direction: l.Direction,
		Shared: &env.shared, Cluster: func(name string) *cluster.Cluster { return env.Store.Load().Cluster(name) }}); err != nil {
		return nil, err
	}
	for i, al := range h.GetAccessLog() {
		a, err := accesslog.Compile(al, fmt.Sprintf("%s.access_log[%d]", f, i))
		if err != nil {
			return nil, err
		}
		m.logs = append(m.logs, a)
	}
	m.proxy = &httputil.ReverseProxy{
		Rewrite:        m.rewrite,
		Transport:      &upstream{},
		ModifyResponse: m.modifyResponse,
		ErrorHandler:   m.errorHandler,
		ErrorLog:       nil,
		BufferPool:     bufPool{},
	}
	return m, nil
}

func (m *HCM) server(isTLS bool) *http.Server {
	p := new(http.Protocols)
	switch m.codec {
	case hcmv3.HttpConnectionManager_HTTP1:
		p.SetHTTP1(true)
	case hcmv3.HttpConnectionManager_HTTP2:
		p.SetHTTP2(isTLS)
		p.SetUnencryptedHTTP2(!isTLS)
	default:
		p.SetHTTP1(true)
		p.SetHTTP2(isTLS)
		p.SetUnencryptedHTTP2(!isTLS)
	}
	idle := m.idle
	if idle == 0 {
		idle = time.Hour
	}
	return &http.Server{
		Handler:     m,
		Protocols:   p,
		HTTP2:       cluster.H2Config(),
		IdleTimeout: idle,
		ErrorLog:    slog.NewLogLogger(httpLog.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
				c = tc.NetConn()
			}
			if mc, ok := c.(*metaConn); ok {
				return context.WithValue(ctx, connKey{}, mc.info)
			}
			return ctx
		},
	}
}

type connKey struct{}

// table finds the route table: inline, or the RDS one in the current snapshot.
func (m *HCM) table(s *config.Snapshot) *router.Table {
	if m.inline != nil {
		return m.inline
	}
	return s.Route(m.rdsName)
}

// FilterStats lists the counters the HCM's HTTP filters keep, by full stat name (http.<prefix>.rbac.denied, ...).
func (m *HCM) FilterStats() []httpfilter.Counter { return m.filters.Counters() }

// Route returns the RDS name this HCM uses ("" for an inline route_config).
func (m *HCM) Route() string { return m.rdsName }

var errNoRoute = errors.New("no route")
