package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"time"

	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

// H1Conn is an HTTP/1.1 connection (plaintext or TLS) to one upstream host, owned by
// one request at a time. It is the lean path's alternative to http.Transport:
// the caller writes and reads on its own goroutine, so a request costs no
// hand-offs between the pool's reader and writer goroutines.
type H1Conn struct {
	net.Conn
	R      *bufio.Reader
	W      *bufio.Writer
	key    h1Key
	idleAt time.Time
	// Reused reports whether the connection served a request before; a
	// failure before any response byte on a reused one may be a close the
	// upstream sent while it sat idle, and is worth one fresh attempt.
	Reused   bool
	deadline time.Time
	uses     uint32
}

// SetAttemptDeadline arms the connection's deadline for one exchange. Moving
// a deadline costs a timer update, so one set for an earlier request that
// falls due at most 1/32 of the timeout before dl is kept: the attempt may
// time out that little early, never late.
func (pc *H1Conn) SetAttemptDeadline(dl time.Time, timeout time.Duration) error {
	if dl.Equal(pc.deadline) || !dl.IsZero() && !pc.deadline.IsZero() && !pc.deadline.After(dl) && dl.Sub(pc.deadline) <= timeout/32 {
		return nil
	}
	pc.deadline = dl
	return pc.SetDeadline(dl)
}

// h1Pool holds idle lean connections by host address; it is created on
// first use so a cluster that never sees lean traffic carries nothing.
type h1Pool struct {
	mu   sync.Mutex
	idle map[h1Key][]*H1Conn
}

// h1Key separates connections by the transport socket they were made with.
type h1Key struct {
	addr string
	sock *socket
}

const maxIdleH1PerHost = 256

// LeanH1 reports whether every request to the cluster may travel as
// HTTP/1.1 (plaintext, or TLS offering http/1.1), so the lean path may carry
// it instead of http.Transport. Clusters configured for HTTP/2 upstream are not.
func (c *Cluster) LeanH1() bool { return c.leanH1 }

func (c *Cluster) computeLeanH1() bool {
	for _, s := range c.sockets() {
		if s.h1IsH2 {
			return false
		}
	}
	return true
}

// leanTLS is the socket's TLS configuration with ALPN narrowed to HTTP/1.1.
func (s *socket) leanTLSConfig() *tls.Config {
	s.leanOnce.Do(func() {
		cfg := httpALPN(s.tls, false)
		if slices.Contains(cfg.NextProtos, "h2") {
			cfg = cfg.Clone()
			cfg.NextProtos = slices.DeleteFunc(slices.Clone(cfg.NextProtos), func(p string) bool { return p == "h2" })
		}
		s.leanTLS = cfg
	})
	return s.leanTLS
}

// GetH1 returns an idle connection to h or dials a new one (counted against
// max_connections like the pooled transports' connections), with TLS when
// h's transport socket has it; dl bounds the dial and handshake.
func (c *Cluster) GetH1(h *Host, dl time.Time) (*H1Conn, error) {
	s := c.sockOf(h)
	key := h1Key{addr: h.Addr, sock: s}
	if p := c.h1.Load(); p != nil {
		now := time.Now()
		p.mu.Lock()
		list := p.idle[key]
		for len(list) > 0 {
			pc := list[len(list)-1]
			list = list[:len(list)-1]
			if c.poolIdle > 0 && now.Sub(pc.idleAt) > c.poolIdle {
				pc.Close()
				continue
			}
			p.idle[key] = list
			p.mu.Unlock()
			pc.Reused = true
			return pc, nil
		}
		p.idle[key] = list
		p.mu.Unlock()
	}
	if c.limits.conns < 1<<30 && c.activeCx.Load() >= c.limits.conns {
		return nil, ErrOverflow
	}
	d := &net.Dialer{Timeout: c.connectTimeout, KeepAlive: 30 * time.Second, Deadline: dl}
	conn, err := c.dialer(d)(context.Background(), "tcp", h.Addr)
	if err != nil {
		return nil, err
	}
	if s.tls != nil {
		tc := meshtls.Client(conn, s.leanTLSConfig())
		ctx, cancel := context.WithTimeout(context.Background(), c.connectTimeout)
		if !dl.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, dl)
		}
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err} // a failed handshake is a connection failure
		}
		conn = tc
	}
	return &H1Conn{Conn: conn, R: bufio.NewReaderSize(conn, 4<<10), W: bufio.NewWriterSize(conn, 4<<10), key: key}, nil
}

// PutH1 returns a connection whose last exchange ended cleanly to the pool.
func (c *Cluster) PutH1(pc *H1Conn) {
	select {
	case <-c.stop:
		pc.Close()
		return
	default:
	}
	p := c.h1.Load()
	if p == nil {
		c.h1.CompareAndSwap(nil, &h1Pool{idle: map[h1Key][]*H1Conn{}})
		p = c.h1.Load()
	}
	pc.uses++
	if c.maxRqPerConn > 0 && pc.uses >= c.maxRqPerConn {
		pc.Close() // max_requests_per_connection reached
		return
	}
	pc.idleAt = time.Now()
	p.mu.Lock()
	if len(p.idle[pc.key]) >= maxIdleH1PerHost {
		p.mu.Unlock()
		pc.Close()
		return
	}
	p.idle[pc.key] = append(p.idle[pc.key], pc)
	p.mu.Unlock()
}

// closeH1 closes every idle lean connection.
func (c *Cluster) closeH1() {
	p := c.h1.Load()
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, list := range p.idle {
		for _, pc := range list {
			pc.Close()
		}
		delete(p.idle, a)
	}
}

// BeginRequest counts a request to h in the host and cluster gauges;
// EndRequest records its outcome as RoundTrip does.
func (c *Cluster) BeginRequest(h *Host) {
	h.active.Add(1)
	c.Stats.RqTotal.Add(1)
	c.Stats.RqActive.Add(1)
}

// EndRequest ends what BeginRequest started and feeds stats and outlier detection.
func (c *Cluster) EndRequest(h *Host, status int, err error) {
	h.active.Add(-1)
	c.Stats.RqActive.Add(-1)
	c.Record(h, status, err)
}
