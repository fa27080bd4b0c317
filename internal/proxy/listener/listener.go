// Package listener runs Envoy listeners: it binds sockets, selects a filter
// chain per connection (port, address, SNI, ALPN, transport), terminates TLS,
// and hands the connection to the HTTP connection manager or the TCP proxy.
package listener

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/runtime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	mxpb "istio.io/api/envoy/config/filter/network/metadata_exchange"

	"mesh.dev/mesh/internal/proxy/batchconn"
	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/config"
	"mesh.dev/mesh/internal/proxy/genericproxy"
	"mesh.dev/mesh/internal/proxy/istiostats"
	"mesh.dev/mesh/internal/proxy/peermeta"
	"mesh.dev/mesh/internal/proxy/protofields"
	"mesh.dev/mesh/internal/proxy/rbac"
	meshtls "mesh.dev/mesh/internal/proxy/tls"

	"mesh.dev/mesh/internal/proxy/logging"
)

// The listener's named loggers (see package logging).
var (
	connHandlerLog = logging.Default.Logger("conn_handler")
	connectionLog  = logging.Default.Logger("connection")
	httpLog        = logging.Default.Logger("http")
	configLog      = logging.Default.Logger("config")
	filterLog      = logging.Default.Logger("filter")
)

// mxConfigType is Istio's TCP metadata exchange network filter.
const mxConfigType = "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange"

// Env is what listeners need from the rest of the proxy.
type Env struct {
	Store    *config.Store
	Observer Observer
	// Stats records Istio's TCP metrics for chains with the istio.stats network filter (nil: those chains are refused).
	Stats *istiostats.Recorder
	// OriginalDst returns the address a redirected connection was meant for (nil in explicit mode).
	OriginalDst func(net.Conn) (netip.AddrPort, bool)
	// Filters are the HTTP filters HCMs may list (nil: only the router).
	Filters *httpfilter.Registry
	// Runtime holds the runtime keys filters read (nil: none).
	Runtime *runtime.Runtime
	// NoLean serves every HTTP connection on the net/http path, as
	// MESH_PROXY_LEAN_HTTP1=off does, so the two paths can be compared.
	NoLean bool
	// ServiceName is the proxy's local service name, which Zipkin spans
	// are reported under (Envoy's local cluster name).
	ServiceName string
	// shared is what HTTP filters keep across config updates of this
	// proxy (httpfilter.Shared).
	shared httpfilter.Shared
}

// Listener is a compiled envoy.config.listener.v3.Listener.
type Listener struct {
	Name           string
	Addr           string
	Bind           bool
	UseOriginalDst bool
	Direction      string // "inbound", "outbound" or ""
	Proto          *listenerv3.Listener

	chains                  []*chain
	def                     *chain
	inspectTLS, inspectHTTP bool
	inspectTimeout          time.Duration // listener_filters_timeout (0: none)
	inspectContinue         bool          // continue_on_listener_filters_timeout: use the default chain instead of closing
	// restoreDst is the original_dst listener filter: chains match on the
	// address a redirected connection was sent to. Unlike UseOriginalDst it
	// never hands the connection to another listener, so a sidecar's inbound
	// capture listener keeps what it captured instead of passing it to the
	// outbound listener on the same port.
	restoreDst bool

	Stats *Stats
}

// Stats are per-listener counters.
type Stats struct {
	CxTotal, CxActive, CxNoChain, TLSError atomic.Int64
	// SSLHandshake counts completed downstream TLS handshakes, SSLReused those that resumed a session.
	SSLHandshake, SSLReused atomic.Int64
	RBACDenied              atomic.Int64 // connections a network RBAC filter refused
}

type chain struct {
	name  string
	match chainMatch
	tls   *tls.Config
	hcm   *HCM
	tcp   *tcpProxy
	gp    *genericproxy.Proxy // generic_proxy: a non-HTTP request/response protocol
	rbac  []*rbac.Engine      // network RBAC filters, in order, before tcp_proxy or the HCM
	srv   *http.Server
	conns *connQueue
	lean  leanConns // connections on the lean HTTP/1.1 path
}

// Compile builds a Listener; prev (may be nil) donates stats.
func Compile(l *listenerv3.Listener, prev *Listener, env *Env) (*Listener, error) {
	f := "listener " + strconv.Quote(l.GetName())
	if err := l.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	// The fields Compile acts on (the rest of this function refuses the
	// unsupported values of some of them with a specific reason).
	if err := protofields.Check(l, f, "name", "address", "additional_addresses", "stat_prefix", "metadata",
		"filter_chains", "default_filter_chain", "filter_chain_matcher", "listener_filters", "listener_filters_timeout",
		"continue_on_listener_filters_timeout", "use_original_dst", "traffic_direction", "bind_to_port",
		"api_listener", "internal_listener"); err != nil {
		return nil, err
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, fmt.Errorf("%s: address: only socket_address is supported", f)
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return nil, fmt.Errorf("%s: address.socket_address.protocol: only TCP is supported", f)
	}
	out := &Listener{
		Name: l.GetName(), Proto: l,
		Addr:            net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))),
		Bind:            l.GetBindToPort() == nil || l.GetBindToPort().GetValue(),
		UseOriginalDst:  l.GetUseOriginalDst().GetValue(),
		Stats:           &Stats{},
		inspectTimeout:  15 * time.Second, // Envoy's default listener_filters_timeout
		inspectContinue: l.GetContinueOnListenerFiltersTimeout(),
	}
	if d := l.GetListenerFiltersTimeout(); d != nil {
		out.inspectTimeout = d.AsDuration() // 0: wait as long as it takes
	}
	if prev != nil {
		out.Stats = prev.Stats
	}
	switch l.GetTrafficDirection() {
	case corev3.TrafficDirection_INBOUND:
		out.Direction = "inbound"
	case corev3.TrafficDirection_OUTBOUND:
		out.Direction = "outbound"
	}
	if len(l.GetAdditionalAddresses()) > 0 {
		return nil, fmt.Errorf("%s: additional_addresses is not supported", f)
	}
	if l.GetApiListener() != nil || l.GetInternalListener() != nil {
		return nil, fmt.Errorf("%s: api_listener and internal_listener are not supported", f)
	}
	if l.GetFilterChainMatcher() != nil {
		return nil, fmt.Errorf("%s: filter_chain_matcher is not supported; use filter_chain_match", f)
	}
	for i, lf := range l.GetListenerFilters() {
		switch tu := lf.GetTypedConfig().GetTypeUrl(); tu {
		case "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector":
			out.inspectTLS = true
		case "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector":
			out.inspectHTTP = true
		case "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst":
			out.restoreDst = true
		default:
			return nil, fmt.Errorf("%s: listener_filters[%d] (%s): type %q is not supported (supported: tls_inspector, http_inspector, original_dst)", f, i, lf.GetName(), tu)
		}
	}
	for i, fc := range l.GetFilterChains() {
		c, err := compileChain(fc, fmt.Sprintf("%s: filter_chains[%d]", f, i), env, out)
		if err != nil {
			return nil, err
		}
		out.chains = append(out.chains, c)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		c, err := compileChain(fc, f+": default_filter_chain", env, out)
		if err != nil {
			return nil, err
		}
		out.def = c
	}
	return out, nil
}

func compileChain(fc *listenerv3.FilterChain, f string, env *Env, l *Listener) (*chain, error) {
	c := &chain{name: fc.GetName()}
	var err error
	if c.match, err = compileChainMatch(fc.GetFilterChainMatch(), f+".filter_chain_match"); err != nil {
		return nil, err
	}
	if len(c.match.sni) > 0 || c.match.transport != "" {
		l.inspectTLS = true
	}
	if len(c.match.alpn) > 0 {
		l.inspectTLS, l.inspectHTTP = true, true
	}
	if ts := fc.GetTransportSocket(); ts != nil {
		switch ts.GetTypedConfig().GetTypeUrl() {
		case "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext":
			dc := &tlsv3.DownstreamTlsContext{}
			if err := ts.GetTypedConfig().UnmarshalTo(dc); err != nil {
				return nil, fmt.Errorf("%s.transport_socket: %w", f, err)
			}
			if c.tls, err = meshtls.ServerConfig(dc, env.Store, f+".transport_socket"); err != nil {
				return nil, err
			}
		case "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer":
		default:
			return nil, fmt.Errorf("%s.transport_socket (%s): type %q is not supported", f, ts.GetName(), ts.GetTypedConfig().GetTypeUrl())
		}
	}
	if len(fc.GetFilters()) == 0 {
		return nil, fmt.Errorf("%s.filters: at least one network filter is required", f)
	}
	var tcpStats *istiostats.TCP // an istio.stats network filter before tcp_proxy (before an HCM the HTTP filter records)
	var statsAny *anypb.Any      // its config, for a generic_proxy after it
	var statsField string
	for i, nf := range fc.GetFilters() {
		ff := fmt.Sprintf("%s.filters[%d] (%s)", f, i, nf.GetName())
		last := i == len(fc.GetFilters())-1
		switch tu := nf.GetTypedConfig().GetTypeUrl(); tu {
		case "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager":
			if !last {
				return nil, fmt.Errorf("%s: http_connection_manager must be the last network filter", ff)
			}
			h := &hcmv3.HttpConnectionManager{}
			if err := nf.GetTypedConfig().UnmarshalTo(h); err != nil {
				return nil, fmt.Errorf("%s: %w", ff, err)
			}
			if c.hcm, err = compileHCM(h, ff, env, l); err != nil {
				return nil, err
			}
		case "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":
			if !last {
				return nil, fmt.Errorf("%s: tcp_proxy must be the last network filter", ff)
			}
			t := &tcpv3.TcpProxy{}
			if err := nf.GetTypedConfig().UnmarshalTo(t); err != nil {
				return nil, fmt.Errorf("%s: %w", ff, err)
			}
			if c.tcp, err = compileTCP(t, ff, env, l); err != nil {
				return nil, err
			}
		case genericproxy.ConfigType:
			if !last {
				return nil, fmt.Errorf("%s: generic_proxy must be the last network filter", ff)
			}
			g := &gpv3.GenericProxy{}
			if err := nf.GetTypedConfig().UnmarshalTo(g); err != nil {
				return nil, fmt.Errorf("%s: %w", ff, err)
			}
			genv := genericproxy.Env{
				Cluster:   func(name string) *cluster.Cluster { return env.Store.Load().Cluster(name) },
				Listener:  l.Name,
				Direction: l.Direction,
				Log:       filterLog,
			}
			if env.Observer != nil {
				genv.Observe = env.Observer.Observe
			}
			if statsAny != nil {
				reqs, err := istiostats.NewRequests(env.Stats, statsAny, statsField, l.Direction,
					func(name string) *cluster.Cluster { return env.Store.Load().Cluster(name) })
				if err != nil {
					return nil, err
				}
				genv.Record = reqs.Record
			}
			if c.gp, err = genericproxy.Compile(g, ff, genv, nil); err != nil {
				return nil, err
			}
		case "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC":
			if last {
				return nil, fmt.Errorf("%s: rbac must be followed by tcp_proxy, http_connection_manager or generic_proxy", ff)
			}
			rc := &rbacnet.RBAC{}
			if err := nf.GetTypedConfig().UnmarshalTo(rc); err != nil {
				return nil, fmt.Errorf("%s: %w", ff, err)
			}
			e, err := rbac.CompileNetwork(rc, ff)
			if err != nil {
				return nil, err
			}
			c.rbac = append(c.rbac, e)
		case istiostats.ConfigType:
			if last {
				return nil, fmt.Errorf("%s: istio.stats must be followed by tcp_proxy, generic_proxy or http_connection_manager", ff)
			}
			if env.Stats == nil {
				return nil, fmt.Errorf("%s: this proxy records no Istio metrics", ff)
			}
			statsAny, statsField = nf.GetTypedConfig(), ff
			if tcpStats, err = istiostats.NewTCP(env.Stats, nf.GetTypedConfig(), ff, l.Direction,
				func(name string) *cluster.Cluster { return env.Store.Load().Cluster(name) }); err != nil {
				return nil, err
			}
		case mxConfigType:
			mx := &mxpb.MetadataExchange{}
			if err := nf.GetTypedConfig().UnmarshalTo(mx); err != nil {
				return nil, fmt.Errorf("%s: %w", ff, err)
			}
			if p := mx.GetProtocol(); p != "" && p != peermeta.ALPN {
				return nil, fmt.Errorf("%s.protocol: %q is not supported (only %s)", ff, p, peermeta.ALPN)
			}
			if mx.GetEnableDiscovery() {
				return nil, fmt.Errorf("%s.enable_discovery: workload discovery is not supported", ff)
			}
			// The exchange itself happens on every TCP proxy connection that
			// negotiated istio-peer-exchange (tcp.go); the filter only asks for it.
		default:
			return nil, fmt.Errorf("%s: network filter type %q is not supported (supported: http_connection_manager, tcp_proxy, generic_proxy, rbac, istio.stats, istio.metadata_exchange)", ff, tu)
		}
	}
	if c.tcp != nil {
		c.tcp.stats = tcpStats
	}
	if c.hcm != nil {
		c.conns = newConnQueue()
		c.srv = c.hcm.server(c.tls != nil)
	}
	return c, nil
}

// SameConfig reports whether the listener resource is unchanged.
func (l *Listener) SameConfig(m *listenerv3.Listener) bool { return proto.Equal(l.Proto, m) }

func (l *Listener) selectChain(ci *connInfo) *chain {
	cands := narrowChains(l.chains, ci)
	var best *chain
	for _, c := range cands {
		if !c.match.matches(ci) {
			continue
		}
		// Among chains alike in what they match on, Envoy prefers the
		// exact server name to a wildcard, and the longest wildcard.
		if best == nil || c.match.score > best.match.score ||
			c.match.score == best.match.score && sniRank(c.match.sni, ci.sni) > sniRank(best.match.sni, ci.sni) {
			best = c
		}
	}
	if best == nil {
		return l.def
	}
	return best
}

// narrowChains applies Envoy's rule for the destination port, the first
// criterion: when some chain names the connection's port, only those are
// candidates, and a chain without a port is not a fallback for them. So a
// STRICT inbound port (a TLS chain only) refuses plaintext instead of the
// catch-all passthrough chain quietly serving it past mTLS.
func narrowChains(chains []*chain, ci *connInfo) []*chain {
	var exact []*chain
	for _, c := range chains {
		if c.match.port != 0 && c.match.port == uint32(ci.dst.Port()) {
			exact = append(exact, c)
		}
	}
	if len(exact) > 0 {
		return exact
	}
	return chains
}

// Manager keeps bound listeners in step with the configuration.
type Manager struct {
	env     *Env
	mu      sync.Mutex
	running map[string]*running // by listener name
	drained bool
	// inboundDrained: DrainInbound ran; inbound listeners are not bound again.
	inboundDrained bool
}

type running struct {
	ln   net.Listener
	cur  atomic.Pointer[Listener]
	addr string
	bind bool
	done chan struct{}
}

// NewManager returns a Manager for env.
func NewManager(env *Env) *Manager { return &Manager{env: env, running: map[string]*running{}} }

// Compiler is the config.Compiler for listeners.
func (m *Manager) Compiler() config.Compiler {
	return func(msg proto.Message, prev *config.Resource, _ *config.Snapshot) (any, error) {
		l := msg.(*listenerv3.Listener)
		var p *Listener
		if prev != nil {
			p = prev.Compiled.(*Listener)
			if p.SameConfig(l) {
				return p, nil
			}
		}
		return Compile(l, p, m.env)
	}
}

// Reconcile binds new listeners, swaps changed ones and closes removed ones.
// It returns bind errors; the listener stays in config but without a socket, as in Envoy's warming failure.
func (m *Manager) Reconcile(s *config.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.drained {
		return nil
	}
	var firstErr error
	seen := map[string]bool{}
	for _, r := range s.List(config.ListenerType) {
		l := r.Compiled.(*Listener)
		seen[l.Name] = true
		rn := m.running[l.Name]
		// A listener that is not bound (only reached by use_original_dst hand-off)
		// is swapped in place too: stopping and restarting an unchanged one
		// would retire the very chains it goes on serving with, so every
		// later config push left it closing each handed-off connection.
		if rn != nil && rn.addr == l.Addr && rn.bind == l.Bind {
			if old := rn.cur.Swap(l); old != l {
				go old.retire(l)
			}
			continue
		}
		if rn != nil {
			m.stop(rn)
			delete(m.running, l.Name)
		}
		rn = &running{addr: l.Addr, bind: l.Bind, done: make(chan struct{})}
		rn.cur.Store(l)
		l.start()
		if l.Bind && !(m.inboundDrained && l.Direction == "inbound") {
			ln, err := net.Listen("tcp", l.Addr)
			if err != nil {
				connHandlerLog.Error("listener bind failed", "listener", l.Name, "address", l.Addr, "err", err)
				if firstErr == nil {
					firstErr = fmt.Errorf("listener %q: bind %s: %w", l.Name, l.Addr, err)
				}
			} else {
				rn.ln = ln
				go m.accept(rn)
			}
		}
		m.running[l.Name] = rn
	}
	for name, rn := range m.running {
		if !seen[name] {
			m.stop(rn)
			delete(m.running, name)
		}
	}
	return firstErr
}

// BoundAddr returns the address a listener actually bound (useful with port 0).
func (m *Manager) BoundAddr(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rn := m.running[name]; rn != nil && rn.ln != nil {
		return rn.ln.Addr().String()
	}
	return ""
}

func (m *Manager) stop(rn *running) {
	if rn.ln != nil {
		rn.ln.Close()
	}
	go rn.cur.Load().retire(nil)
}

// start launches the HTTP servers of a listener's chains.
func (l *Listener) start() {
	for _, c := range l.allChains() {
		if c.srv != nil {
			go c.srv.Serve(c.conns)
		}
	}
}

func (l *Listener) allChains() []*chain {
	if l.def != nil {
		return append(append([]*chain{}, l.chains...), l.def)
	}
	return l.chains
}

// listenerDrain is how long connections of a replaced listener may keep
// serving before they are closed; responses meanwhile carry Connection: close,
// so clients move to the new listener between requests instead of losing one.
const listenerDrain = 5 * time.Second

// retire gracefully stops chains not carried over into next.
func (l *Listener) retire(next *Listener) {
	if next != nil {
		next.start()
	}
	for _, c := range l.allChains() {
		if c.srv != nil {
			c.hcm.draining.Store(true)
			c.conns.Close()
		}
	}
	time.Sleep(listenerDrain)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range l.allChains() {
		if c.srv != nil {
			c.lean.closeIdle()
			c.srv.Shutdown(ctx)
			c.lean.wait(ctx)
		}
	}
}

func (m *Manager) accept(rn *running) {
	for {
		conn, err := rn.ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return
		}
		go m.serveConn(rn.cur.Load(), conn, nil)
	}
}

// serveConn routes one accepted connection to its filter chain. handedOff is
// the original destination when another listener passed the connection on
// (use_original_dst), nil for a connection accepted by l itself.
func (m *Manager) serveConn(l *Listener, conn net.Conn, handedOff *netip.AddrPort) {
	l.Stats.CxTotal.Add(1)
	ci := &connInfo{}
	ci.src = addrPort(conn.RemoteAddr())
	ci.dst = addrPort(conn.LocalAddr())
	if handedOff != nil {
		ci.dst = *handedOff
	} else if (l.UseOriginalDst || l.restoreDst) && m.env.OriginalDst != nil {
		if od, ok := m.env.OriginalDst(conn); ok {
			ci.dst = od
			// Only use_original_dst hands off (Envoy's rule); the original_dst
			// listener filter just restores the destination for this listener.
			if l.UseOriginalDst {
				if target := m.byAddr(od, l.Name); target != nil {
					m.serveConn(target, conn, &od)
					return
				}
			}
		}
	}
	var c net.Conn = conn
	if l.inspectTLS || l.inspectHTTP {
		var timedOut bool
		c, timedOut = inspect(conn, ci, l.inspectTLS, l.inspectHTTP, l.inspectTimeout)
		if timedOut && !l.inspectContinue {
			l.Stats.CxNoChain.Add(1)
			conn.Close()
			return
		}
	}
	ch := l.selectChain(ci)
	if ch == nil {
		l.Stats.CxNoChain.Add(1)
		conn.Close()
		return
	}
	mc := &metaConn{Conn: c, info: ci}
	c = mc
	if ch.tls != nil {
		tc := tls.Server(c, ch.tls)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			l.Stats.TLSError.Add(1)
			connectionLog.Debug("downstream TLS handshake failed", "listener", l.Name, "remote", ci.src, "err", err)
			conn.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		l.Stats.SSLHandshake.Add(1)
		if tc.ConnectionState().DidResume {
			l.Stats.SSLReused.Add(1)
		}
		c = tc
	}
	if len(ch.rbac) > 0 {
		var principal string
		if tc, ok := c.(*tls.Conn); ok {
			cs := tc.ConnectionState()
			principal = meshtls.Principal(&cs)
		}
		req := rbac.ConnRequest(principal, ci.src, ci.dst, ci.sni)
		for _, e := range ch.rbac {
			if e.Log() {
				// Istio's AUDIT: nothing is decided; the TCP access log
				// sees the hint (an HCM after it logs per request from
				// its own HTTP filters, as pilot writes them).
				if ci.meta == nil {
					ci.meta = &httpfilter.Metadata{}
				}
				rbac.SetAccessLogHint(ci.meta, e.Matches(req))
				continue
			}
			if ok, _ := e.Allowed(req); !ok {
				l.Stats.RBACDenied.Add(1)
				connectionLog.Debug("connection denied by RBAC", "listener", l.Name, "chain", ch.name, "remote", ci.src, "principal", principal)
				conn.Close()
				return
			}
		}
	}
	l.Stats.CxActive.Add(1)
	if ch.tcp != nil {
		ch.tcp.serve(c, ci)
		l.Stats.CxActive.Add(-1)
		return
	}
	if ch.gp != nil {
		ch.gp.Serve(c, ci.src.String(), ci.dst.String())
		l.Stats.CxActive.Add(-1)
		return
	}
	mc.onClose = func() { l.Stats.CxActive.Add(-1) }
	tc, isTLS := c.(*tls.Conn)
	h2 := isTLS && tc.ConnectionState().NegotiatedProtocol == "h2"
	if ch.hcm != nil && ch.hcm.leanEligible() && !h2 {
		ch.hcm.serveLean(ch, mc, c)
		return
	}
	if h2 {
		mc.batch()
	}
	for !ch.conns.push(c) {
		// The chain was retired by a config update while this connection was
		// being set up: hand it to the chain that replaced it rather than drop it.
		next := m.current(l.Name)
		if next == nil || next == l {
			c.Close()
			return
		}
		l = next
		ch = l.selectChain(ci)
		_, isTLS := c.(*tls.Conn)
		if ch == nil || ch.hcm == nil || (ch.tls != nil) != isTLS {
			c.Close()
			return
		}
	}
}

func (m *Manager) current(name string) *Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rn := m.running[name]; rn != nil {
		return rn.cur.Load()
	}
	return nil
}

// byAddr finds the listener that owns a destination, for use_original_dst hand-off.
func (m *Manager) byAddr(dst netip.AddrPort, self string) *Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	var wildcard *Listener
	for name, rn := range m.running {
		if name == self {
			continue
		}
		l := rn.cur.Load()
		host, port, _ := net.SplitHostPort(l.Addr)
		if port != strconv.Itoa(int(dst.Port())) {
			continue
		}
		if host == dst.Addr().Unmap().String() {
			return l
		}
		if host == "0.0.0.0" || host == "::" {
			wildcard = l
		}
	}
	return wildcard
}

// Drain stops accepting new connections and waits (up to ctx) for in-flight requests.
func (m *Manager) Drain(ctx context.Context) {
	m.mu.Lock()
	m.drained = true
	rns := make([]*running, 0, len(m.running))
	for _, rn := range m.running {
		rns = append(rns, rn)
	}
	m.mu.Unlock()
	for _, rn := range rns {
		if rn.ln != nil {
			rn.ln.Close()
		}
	}
	var wg sync.WaitGroup
	for _, rn := range rns {
		for _, c := range rn.cur.Load().allChains() {
			if c.srv != nil {
				wg.Add(1)
				c.hcm.draining.Store(true)
				go func() {
					defer wg.Done()
					c.conns.Close()
					c.lean.closeIdle()
					c.srv.Shutdown(ctx)
					c.lean.wait(ctx)
				}()
			}
		}
	}
	wg.Wait()
}

// Listeners lists the running listeners with their bound addresses.
func (m *Manager) Listeners() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for n, rn := range m.running {
		if rn.ln != nil {
			out[n] = rn.ln.Addr().String()
		} else {
			out[n] = rn.addr
		}
	}
	return out
}

// addrPort is a connection's address as Envoy reports it. A Go listener on
// 0.0.0.0 is a dual-stack IPv6 socket, which gives IPv4 peers as
// ::ffff:a.b.c.d; Envoy turns such a mapped address back into the IPv4 one,
// and so does this, once, where the connection is accepted: access logs,
// RBAC, ext_authz, X-Forwarded-For and every filter see a.b.c.d:port.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	if ta, ok := a.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	} else {
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// metaConn carries connection facts to the HTTP handler.
type metaConn struct {
	net.Conn
	// r, when set, is read instead of Conn: the lean path's reader, holding
	// bytes it read before handing the connection to net/http.
	r io.Reader
	// b, when set, takes the writes: an HTTP/2 connection's frames are
	// batched (under TLS, when there is TLS).
	b       *batchconn.Conn
	info    *connInfo
	onClose func()
	once    sync.Once
}

// batch makes the connection's writes from now on batched; nothing may be
// writing to it while it is called.
func (c *metaConn) batch() {
	if c.b == nil {
		c.b = batchconn.New(c.Conn)
		c.b.Enable()
	}
}

func (c *metaConn) Write(p []byte) (int, error) {
	if c.b != nil {
		return c.b.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *metaConn) Read(p []byte) (int, error) {
	if c.r != nil {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *metaConn) Close() error {
	c.once.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
	})
	if c.b != nil {
		return c.b.Close()
	}
	return c.Conn.Close()
}

// connQueue is a net.Listener fed by the accept loop, one per HTTP filter chain.
type connQueue struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{} }

// RouteNames lists the RDS route configurations the listener's HTTP chains use.
func (l *Listener) RouteNames() []string {
	var out []string
	for _, c := range l.allChains() {
		if c.hcm != nil && c.hcm.rdsName != "" {
			out = append(out, c.hcm.rdsName)
		}
	}
	return out
}

// GenericProxies lists the listener's generic_proxy filters, for stats.
func (l *Listener) GenericProxies() []*genericproxy.Proxy {
	var out []*genericproxy.Proxy
	for _, c := range l.allChains() {
		if c.gp != nil {
			out = append(out, c.gp)
		}
	}
	return out
}

// HCMs lists the listener's HTTP connection managers, for stats.
func (l *Listener) HCMs() []*HCM {
	var out []*HCM
	for _, c := range l.allChains() {
		if c.hcm != nil {
			out = append(out, c.hcm)
		}
	}
	return out
}
