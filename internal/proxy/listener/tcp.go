package listener

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"mesh.dev/mesh/internal/proxy/accesslog"
	"mesh.dev/mesh/internal/proxy/istiostats"
	"mesh.dev/mesh/internal/proxy/peermeta"
	"mesh.dev/mesh/internal/proxy/protofields"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

// tcpProxy is a compiled TcpProxy network filter.
type tcpProxy struct {
	env      *Env
	l        *Listener
	cluster  string
	weighted []weightedName
	total    uint32
	idle     time.Duration
	logs     []*accesslog.Logger
	stat     string
	stats    *istiostats.TCP // the istio.stats network filter before it; nil: none
}

type weightedName struct {
	name   string
	weight uint32
}

func compileTCP(t *tcpv3.TcpProxy, f string, env *Env, l *Listener) (*tcpProxy, error) {
	if err := protofields.Check(t, f, "stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "access_log",
		"tunneling_config", "on_demand", "metadata_match"); err != nil {
		return nil, err
	}
	p := &tcpProxy{env: env, l: l, idle: time.Hour, stat: t.GetStatPrefix()}
	switch cs := t.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		p.cluster = cs.Cluster
	case *tcpv3.TcpProxy_WeightedClusters:
		for _, c := range cs.WeightedClusters.GetClusters() {
			p.weighted = append(p.weighted, weightedName{c.GetName(), c.GetWeight()})
			p.total += c.GetWeight()
		}
		if p.total == 0 {
			return nil, fmt.Errorf("%s.weighted_clusters: weights sum to zero", f)
		}
	default:
		return nil, fmt.Errorf("%s: cluster specifier %T is not supported", f, cs)
	}
	if d := t.GetIdleTimeout(); d != nil {
		p.idle = d.AsDuration()
	}
	if t.GetTunnelingConfig() != nil || t.GetOnDemand() != nil || t.GetMetadataMatch() != nil {
		return nil, fmt.Errorf("%s: tunneling_config, on_demand and metadata_match are not supported", f)
	}
	for i, al := range t.GetAccessLog() {
		a, err := accesslog.Compile(al, fmt.Sprintf("%s.access_log[%d]", f, i))
		if err != nil {
			return nil, err
		}
		p.logs = append(p.logs, a)
	}
	return p, nil
}

func (p *tcpProxy) serve(down net.Conn, ci *connInfo) {
	defer down.Close()
	start := time.Now()
	name := p.cluster
	if len(p.weighted) > 0 {
		slot := rand.Uint32N(p.total)
		for _, w := range p.weighted {
			if slot < w.weight {
				name = w.name
				break
			}
			slot -= w.weight
		}
	}
	info := &Request{Start: start, Protocol: "TCP", Remote: ci.src.String(), Local: ci.dst.String(), SNI: ci.sni, Cluster: name, Direction: p.l.Direction, Listener: p.l.Name, Flags: "-"}
	if ci.meta != nil {
		info.Meta = ci.meta
	}
	var peer *peermeta.Node
	var principal string
	if tc, ok := down.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		principal = meshtls.Principal(&cs)
		if cs.NegotiatedProtocol == peermeta.ALPN {
			peer, down = p.exchangeDown(down)
		}
	}
	var conn *istiostats.Conn // the connection's metrics, once counted opened
	defer func() {
		if p.stats != nil {
			if conn == nil {
				conn = p.stats.Open(peer, principal, name, info.Flags)
			}
			conn.Close()
		}
		info.Duration = time.Since(start)
		for _, l := range p.logs {
			l.Log(info)
		}
		if p.env.Observer != nil {
			p.env.Observer.Observe(info)
		}
	}()
	c := p.env.Store.Load().Cluster(name)
	if c == nil {
		info.Flags = "NC"
		return
	}
	if !c.Acquire() {
		info.Flags = "UO"
		return
	}
	defer c.Release()
	h, err := c.Pick(0, false, nil, ci.dst.String())
	if err != nil {
		info.Flags = "UH"
		return
	}
	info.UpstreamHost = h.Addr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, err := c.DialTCP(ctx, h)
	cancel()
	if err != nil {
		info.Flags, info.UpstreamFailure = "UF", err.Error()
		filterLog.Debug("tcp proxy: upstream connect failed", "cluster", name, "host", h.Addr, "err", err)
		return
	}
	defer up.Close()
	info.UpstreamLocal = up.LocalAddr().String()
	c.Record(h, 200, nil)
	if tc, ok := up.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == peermeta.ALPN {
		var upPeer *peermeta.Node
		if upPeer, up = p.exchangeUp(up); p.l.Direction != "inbound" {
			peer = upPeer // a client side labels with the server's metadata
		}
	}
	var recv, sent func(int)
	if p.stats != nil {
		conn = p.stats.Open(peer, principal, name, info.Flags)
		recv, sent = conn.Received, conn.Sent
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); info.BytesIn = pipe(up, down, p.idle, recv) }()
	go func() { defer wg.Done(); info.BytesOut = pipe(down, up, p.idle, sent) }()
	wg.Wait()
}

// exchangeTimeout bounds the wait for a peer's metadata block: a peer that
// negotiated istio-peer-exchange sends it first thing.
const exchangeTimeout = 5 * time.Second

// exchangeDown is the server side of the TCP metadata exchange: read the
// client's block, then answer with ours. A stream not starting with a block
// is passed on whole; the peer is then unknown.
func (p *tcpProxy) exchangeDown(down net.Conn) (*peermeta.Node, net.Conn) {
	down.SetReadDeadline(time.Now().Add(exchangeTimeout))
	n, rest, err := peermeta.ReadExchange(down)
	down.SetReadDeadline(time.Time{})
	if err != nil {
		filterLog.Debug("tcp metadata exchange: no block from downstream", "listener", p.l.Name, "err", err)
		return nil, withPrefix(down, rest)
	}
	if p.env.Stats != nil {
		down.Write(p.env.Stats.Self.ExchangeBlock())
	}
	return n, down
}

// exchangeUp is the client side: send our block, then read the server's.
func (p *tcpProxy) exchangeUp(up net.Conn) (*peermeta.Node, net.Conn) {
	if p.env.Stats != nil {
		up.Write(p.env.Stats.Self.ExchangeBlock())
	}
	up.SetReadDeadline(time.Now().Add(exchangeTimeout))
	n, rest, err := peermeta.ReadExchange(up)
	up.SetReadDeadline(time.Time{})
	if err != nil {
		filterLog.Debug("tcp metadata exchange: no block from upstream", "listener", p.l.Name, "err", err)
		return nil, withPrefix(up, rest)
	}
	return n, up
}

// prefixConn replays bytes read ahead of a connection's stream.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// CloseWrite half-closes the connection underneath, as pipe expects.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func withPrefix(c net.Conn, prefix []byte) net.Conn {
	if len(prefix) == 0 {
		return c
	}
	return &prefixConn{Conn: c, prefix: append([]byte(nil), prefix...)}
}

// pipe copies src to dst, half-closing dst when src ends, resetting the idle timer on traffic.
func pipe(dst, src net.Conn, idle time.Duration, count func(int)) int64 {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle))
		}
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				src.Close()
				return n
			}
			n += int64(k)
			if count != nil {
				count(k)
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close() // idle timeout or reset: tear both sides down
				src.Close()
				return n
			}
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			} else {
				dst.Close()
			}
			return n
		}
	}
}
