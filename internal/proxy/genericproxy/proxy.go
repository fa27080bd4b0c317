package genericproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gprouter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/router/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"

	"mesh.dev/mesh/internal/proxy/accesslog"
	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/protofields"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

// ConfigType is the network filter's type URL.
const ConfigType = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.v3.GenericProxy"

// routerType is generic_proxy's router filter, the one L7 filter mesh-proxy runs.
const routerType = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.router.v3.Router"

// Env is what the filter needs from the rest of the proxy.
type Env struct {
	// Cluster returns the current cluster by name (nil: none).
	Cluster func(name string) *cluster.Cluster
	// Observe sees every request's access log entry (nil: nobody).
	Observe func(*accesslog.Entry)
	// Record puts a finished request in Istio's metrics (nil: an istio.stats filter did not ask).
	Record func(*accesslog.Entry)
	// Listener and Direction label the entries.
	Listener, Direction string
	// Log is where protocol errors are reported at debug level (nil: slog's default).
	Log *slog.Logger
}

// Proxy is a compiled GenericProxy filter.
type Proxy struct {
	StatPrefix string
	Stats      *Stats
	codec      Codec
	table      *table
	bind       bool // bind_upstream_connection: a downstream connection's own upstream connections
	logs       []*accesslog.Logger
	env        Env
}

// Stats are the filter's counters, under generic_proxy.<stat_prefix>.
type Stats struct {
	RqTotal, RqActive, RqOneWay        atomic.Int64
	RqLocal, RqTimeout, RqRetry        atomic.Int64 // answered by the proxy; timed out; retried
	RqErrorResponse, RqUpstreamFailure atomic.Int64 // error responses from upstream; tries that failed to connect or were reset
	NoRoute, NoCluster, DecodingError  atomic.Int64
	CxTotal, CxActive                  atomic.Int64
}

// Stat is one named counter value.
type Stat struct {
	Name  string
	Value int64
}

// StatList is the filter's counters with Envoy-style names.
func (p *Proxy) StatList() []Stat {
	s := p.Stats
	pre := "generic_proxy." + p.StatPrefix + "."
	return []Stat{
		{pre + "downstream_rq_total", s.RqTotal.Load()},
		{pre + "downstream_rq_active", s.RqActive.Load()},
		{pre + "downstream_rq_oneway", s.RqOneWay.Load()},
		{pre + "downstream_rq_local", s.RqLocal.Load()},
		{pre + "downstream_rq_timeout", s.RqTimeout.Load()},
		{pre + "downstream_rq_retry", s.RqRetry.Load()},
		{pre + "downstream_rq_error_response", s.RqErrorResponse.Load()},
		{pre + "upstream_rq_failure", s.RqUpstreamFailure.Load()},
		{pre + "route_missing", s.NoRoute.Load()},
		{pre + "cluster_missing", s.NoCluster.Load()},
		{pre + "downstream_rq_decoding_error", s.DecodingError.Load()},
		{pre + "downstream_cx_total", s.CxTotal.Load()},
		{pre + "downstream_cx_active", s.CxActive.Load()},
	}
}

// Compile builds the filter; f names it in errors; prev (may be nil) donates stats.
func Compile(gp *gpv3.GenericProxy, f string, env Env, prev *Proxy) (*Proxy, error) {
	if err := gp.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	if err := protofields.Check(gp, f, "stat_prefix", "codec_config", "route_config", "generic_rds", "filters", "access_log"); err != nil {
		return nil, err
	}
	p := &Proxy{StatPrefix: gp.GetStatPrefix(), Stats: &Stats{}, env: env}
	if prev != nil && prev.StatPrefix == p.StatPrefix {
		p.Stats = prev.Stats
	}
	if p.env.Log == nil {
		p.env.Log = slog.Default()
	}
	var err error
	if p.codec, err = CompileCodec(gp.GetCodecConfig(), f+".codec_config"); err != nil {
		return nil, err
	}
	switch rs := gp.GetRouteSpecifier().(type) {
	case *gpv3.GenericProxy_RouteConfig:
		if p.table, err = compileTable(rs.RouteConfig, f+".route_config"); err != nil {
			return nil, err
		}
	case *gpv3.GenericProxy_GenericRds:
		return nil, fmt.Errorf("%s.generic_rds: route discovery is not supported; send route_config inline", f)
	}
	if len(gp.GetFilters()) == 0 {
		return nil, fmt.Errorf("%s.filters: the router filter (%s) is required", f, routerType)
	}
	for i, fl := range gp.GetFilters() {
		ff := fmt.Sprintf("%s.filters[%d] (%s)", f, i, fl.GetName())
		tu := fl.GetTypedConfig().GetTypeUrl()
		if tu != routerType {
			return nil, fmt.Errorf("%s: filter type %q is not supported (only the router, %s)", ff, tu, routerType)
		}
		if i != len(gp.GetFilters())-1 {
			return nil, fmt.Errorf("%s: the router must be the last filter", ff)
		}
		r := &gprouter.Router{}
		if err := fl.GetTypedConfig().UnmarshalTo(r); err != nil {
			return nil, fmt.Errorf("%s: %w", ff, err)
		}
		if err := protofields.Check(r, ff, "bind_upstream_connection"); err != nil {
			return nil, err
		}
		p.bind = r.GetBindUpstreamConnection()
	}
	for i, al := range gp.GetAccessLog() {
		l, err := accesslog.Compile(al, fmt.Sprintf("%s.access_log[%d]", f, i))
		if err != nil {
			return nil, err
		}
		p.logs = append(p.logs, l)
	}
	return p, nil
}

// downConn is a downstream connection: responses are written to it as
// they come, in whatever order.
type downConn struct {
	conn  net.Conn
	wmu   sync.Mutex
	pools sync.Map // poolKey -> *hostPool, with bind_upstream_connection
}

func (d *downConn) write(b []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_, err := d.conn.Write(b)
	return err
}

// Serve proxies one downstream connection until it closes. remote and local
// are its addresses for the access log.
func (p *Proxy) Serve(down net.Conn, remote, local string) {
	var tlsState *tls.ConnectionState
	var principal string
	if tc, ok := down.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		tlsState, principal = &cs, meshtls.Principal(&cs)
	}
	p.Stats.CxTotal.Add(1)
	p.Stats.CxActive.Add(1)
	defer p.Stats.CxActive.Add(-1)
	dc := &downConn{conn: down}
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		down.Close()
		dc.pools.Range(func(_, v any) bool { v.(*hostPool).closeAll(); return true })
	}()
	br := bufio.NewReaderSize(down, 32<<10)
	ordered := maxID(p.codec) == 0
	for {
		f, err := p.codec.Decode(br)
		if err != nil {
			if err != io.EOF && !errors.Is(err, net.ErrClosed) {
				if IsDecodeError(err) {
					p.Stats.DecodingError.Add(1)
				}
				p.env.Log.Debug("generic proxy: downstream stream ended", "listener", p.env.Listener, "protocol", p.codec.Name(), "remote", remote, "err", err)
			}
			return
		}
		if f.Kind == 0 { // a protocol that does not say: what a client sends is a request
			f.Kind = Request
		}
		if f.Kind != Request && f.Kind != OneWay {
			p.Stats.DecodingError.Add(1)
			p.env.Log.Debug("generic proxy: downstream sent a response", "listener", p.env.Listener, "remote", remote, "kind", f.Kind)
			return
		}
		p.Stats.RqTotal.Add(1)
		p.Stats.RqActive.Add(1)
		if ordered {
			// Without request ids the client matches responses by order:
			// one request at a time.
			p.handle(dc, f, remote, local, tlsState, principal)
			p.Stats.RqActive.Add(-1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Stats.RqActive.Add(-1)
			p.handle(dc, f, remote, local, tlsState, principal)
		}()
	}
}

// failure is why one try got no response.
type failure uint8

const (
	failNone failure = iota
	failConnect
	failReset
	failTimeout
)

func (p *Proxy) handle(dc *downConn, f *Frame, remote, local string, tlsState *tls.ConnectionState, principal string) {
	start := time.Now()
	e := &accesslog.Entry{Start: start, Protocol: p.codec.Name(), Method: f.Method, Host: f.Service, Path: f.Service,
		Remote: remote, Local: local, Listener: p.env.Listener, Direction: p.env.Direction, Flags: "-",
		RequestID: strconv.FormatUint(f.ID, 10), BytesIn: int64(len(f.Raw)), TLS: tlsState, Principal: principal}
	defer func() {
		e.Duration = time.Since(start)
		for _, l := range p.logs {
			l.Log(e)
		}
		if p.env.Record != nil {
			p.env.Record(e)
		}
		if p.env.Observe != nil {
			p.env.Observe(e)
		}
	}()
	if f.Kind == OneWay {
		p.Stats.RqOneWay.Add(1)
	}
	var r *Route
	if p.table != nil {
		r = p.table.route(f)
	}
	if r == nil {
		p.Stats.NoRoute.Add(1)
		p.local(dc, f, e, ReplyNoRoute, "")
		return
	}
	e.Route = r.Name
	name := r.pick()
	e.Cluster = name
	c := p.env.Cluster(name)
	if c == nil {
		p.Stats.NoCluster.Add(1)
		p.local(dc, f, e, ReplyNoCluster, name)
		return
	}
	if !c.Acquire() {
		p.local(dc, f, e, ReplyOverflow, "")
		return
	}
	defer c.Release()
	var avoid *cluster.Host
	var last failure
	for try := 0; try < r.Attempts; try++ {
		if try > 0 {
			if !retryable(r.retryOn, last) || !c.AcquireRetry() {
				break
			}
			p.Stats.RqRetry.Add(1)
		}
		h, err := c.Pick(0, false, avoid, "")
		if try > 0 {
			c.ReleaseRetry()
		}
		if err != nil {
			p.local(dc, f, e, ReplyNoHealthyUpstream, "")
			return
		}
		e.UpstreamHost = h.Addr
		resp, why := p.try(dc, c, h, f, r.Timeout)
		if why == failNone {
			if resp == nil { // one-way: sent
				e.Status = 200
				c.Record(h, 200, nil)
				return
			}
			status := 200
			if resp.Kind == ErrorResponse {
				status = 500
				p.Stats.RqErrorResponse.Add(1)
				e.Details = "error_response"
			} else {
				e.Details = "via_upstream"
			}
			e.Status = status
			c.Record(h, status, nil)
			b, err := p.codec.WithID(resp, f.ID)
			if err == nil {
				err = dc.write(b)
			}
			if err != nil {
				dc.conn.Close()
				e.Flags = "DC"
				return
			}
			e.BytesOut = int64(len(b))
			return
		}
		last = why
		avoid = h
		switch why {
		case failTimeout:
			p.Stats.RqTimeout.Add(1)
			c.Record(h, 504, nil)
		case failReset:
			p.Stats.RqUpstreamFailure.Add(1)
			c.Record(h, 0, errUpstreamReset)
		case failConnect:
			p.Stats.RqUpstreamFailure.Add(1) // DialTCP recorded it with the cluster
		}
	}
	if last == failTimeout {
		p.local(dc, f, e, ReplyTimeout, "")
		return
	}
	p.local(dc, f, e, ReplyUpstreamFailure, "")
}

func retryable(on retryOn, why failure) bool {
	switch why {
	case failConnect:
		return on.connectFailure
	case failReset:
		return on.reset
	case failTimeout:
		return on.timeout
	}
	return false
}

// try sends f to h once and waits for its response (nil for one-way) up to timeout (0: no limit).
func (p *Proxy) try(dc *downConn, c *cluster.Cluster, h *cluster.Host, f *Frame, timeout time.Duration) (*Frame, failure) {
	pool := sharedPool(c, h, p.codec, f.format)
	if p.bind {
		k := poolKey{c, h.Addr, p.codec.Key(), f.format}
		v, _ := dc.pools.LoadOrStore(k, &hostPool{key: k, codec: p.codec, max: 1})
		pool = v.(*hostPool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	uc, err := pool.get(ctx, h)
	cancel()
	if err != nil {
		p.env.Log.Debug("generic proxy: upstream connect failed", "cluster", c.Name, "host", h.Addr, "err", err)
		return nil, failConnect
	}
	ch, id, err := uc.send(f)
	if err != nil {
		return nil, failReset
	}
	if ch == nil {
		return nil, failNone
	}
	var expire <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expire = t.C
	}
	select {
	case resp := <-ch:
		return resp, failNone
	case <-uc.done:
		select { // the response may have come just before the close
		case resp := <-ch:
			return resp, failNone
		default:
		}
		return nil, failReset
	case <-expire:
		if pool.exclusive() {
			// Its late response could not be told from the next request's.
			uc.close(errTimedOut)
		} else {
			uc.forget(id)
		}
		return nil, failTimeout
	}
}

// local answers f from the proxy, or closes the downstream connection when
// the protocol cannot carry an error.
func (p *Proxy) local(dc *downConn, f *Frame, e *accesslog.Entry, kind ReplyKind, msg string) {
	p.Stats.RqLocal.Add(1)
	e.Flags = kind.flags()
	e.Status = kind.status()
	e.Details = kind.String()
	if f.Kind == OneWay {
		return
	}
	b := p.codec.Reply(f, kind, msg)
	if b == nil {
		dc.conn.Close()
		return
	}
	if dc.write(b) != nil {
		dc.conn.Close()
	}
	e.BytesOut = int64(len(b))
}
