package genericproxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"mesh.dev/mesh/internal/proxy/cluster"
)

// Upstream connections are shared: every downstream connection of every
// listener with the same codec settings sends its requests to a host over
// the same few connections, each request under a request id unique on its
// connection (the codec rewrites it on the way up and back on the way down).
const (
	// maxConnsPerHost bounds the pool: a request goes on a new connection
	// while every open one has a request in flight and fewer than this are
	// open, then on the least busy one (many RPC servers answer a
	// connection's requests one after another, so a few connections buy
	// parallelism).
	maxConnsPerHost = 8
	// idleTimeout closes a connection with nothing in flight for this long.
	idleTimeout = 60 * time.Second
)

// poolKey: a connection carries one wire format (servers such as Thrift's
// THeader server transport settle on the format of a connection's first
// message), so frames of each format get their own connections.
type poolKey struct {
	c      *cluster.Cluster
	addr   string
	codec  string
	format uint8
}

// pools are the shared pools; a downstream connection with
// bind_upstream_connection has its own (downConn.pools).
var pools sync.Map // poolKey -> *hostPool

type hostPool struct {
	key   poolKey
	codec Codec
	max   int
	owner *sync.Map // where the pool is registered; it leaves when its last connection closes

	mu      sync.Mutex
	conns   []*upConn
	dialing int
}

func sharedPool(c *cluster.Cluster, h *cluster.Host, codec Codec, format uint8) *hostPool {
	k := poolKey{c, h.Addr, codec.Key(), format}
	if p, ok := pools.Load(k); ok {
		return p.(*hostPool)
	}
	p, _ := pools.LoadOrStore(k, &hostPool{key: k, codec: codec, max: maxConnsPerHost, owner: &pools})
	return p.(*hostPool)
}

// get returns a connection for one more request, dialing when the pool says to.
func (p *hostPool) get(ctx context.Context, h *cluster.Host) (*upConn, error) {
	p.mu.Lock()
	if p.exclusive() {
		// A protocol without request ids: one request at a time on a
		// connection, so a connection is reserved for the request it is given to.
		for _, uc := range p.conns {
			if uc.reserve() {
				p.mu.Unlock()
				return uc, nil
			}
		}
	}
	var best *upConn
	bestN := 0
	for _, uc := range p.conns {
		if p.exclusive() {
			break
		}
		n, ok := uc.inflight()
		if !ok {
			continue
		}
		if best == nil || n < bestN {
			best, bestN = uc, n
		}
	}
	if best != nil && (bestN == 0 || len(p.conns)+p.dialing >= p.max) {
		p.mu.Unlock()
		return best, nil
	}
	p.dialing++
	p.mu.Unlock()
	conn, err := p.key.c.DialTCP(ctx, h)
	p.mu.Lock()
	p.dialing--
	if err != nil {
		p.mu.Unlock()
		return nil, err
	}
	uc := &upConn{conn: conn, codec: p.codec, pool: p, pending: map[uint64]chan *Frame{}, done: make(chan struct{}), maxID: maxID(p.codec), reserved: p.exclusive()}
	p.conns = append(p.conns, uc)
	p.mu.Unlock()
	go uc.readLoop()
	return uc, nil
}

func (p *hostPool) exclusive() bool { return maxID(p.codec) == 0 }

func (p *hostPool) remove(uc *upConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.conns {
		if c == uc {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	if len(p.conns) == 0 && p.owner != nil {
		p.owner.CompareAndDelete(p.key, p)
	}
}

func (p *hostPool) closeAll() {
	p.mu.Lock()
	conns := append([]*upConn(nil), p.conns...)
	p.mu.Unlock()
	for _, uc := range conns {
		uc.close(errDownstreamClosed)
	}
}

var (
	errUpstreamReset    = errors.New("upstream connection closed before the response")
	errDownstreamClosed = errors.New("downstream connection closed")
	errTimedOut         = errors.New("a request timed out on a connection that cannot match responses by id")
)

// upConn is one upstream connection carrying many requests.
type upConn struct {
	conn  net.Conn
	codec Codec
	pool  *hostPool
	maxID uint64

	wmu sync.Mutex // one frame written at a time

	mu      sync.Mutex
	pending map[uint64]chan *Frame // by the id sent upstream
	next    uint64
	// reserved: taken by a request not sent yet (codecs without request ids only).
	reserved bool
	closed   bool
	err      error
	done     chan struct{} // closed with the connection
}

// inflight is the number of requests awaiting a response; ok is false once closed.
func (u *upConn) inflight() (int, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending), !u.closed
}

// reserve takes an idle connection for one request.
func (u *upConn) reserve() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || u.reserved || len(u.pending) > 0 {
		return false
	}
	u.reserved = true
	return true
}

// send writes f under a fresh request id and returns where its response
// arrives (nil for a one-way message) and the id it went under.
func (u *upConn) send(f *Frame) (chan *Frame, uint64, error) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil, 0, errUpstreamReset
	}
	u.reserved = false
	var id uint64
	for u.maxID > 0 {
		id = u.next
		u.next = (u.next + 1) & u.maxID
		if _, busy := u.pending[id]; !busy {
			break
		}
	}
	var ch chan *Frame
	if f.Kind != OneWay {
		ch = make(chan *Frame, 1)
		u.pending[id] = ch
		u.conn.SetReadDeadline(time.Time{})
	}
	u.mu.Unlock()
	b, err := u.codec.WithID(f, id)
	if err == nil {
		u.wmu.Lock()
		_, err = u.conn.Write(b)
		u.wmu.Unlock()
	}
	if err != nil {
		u.close(err)
		return nil, 0, errUpstreamReset
	}
	if ch == nil {
		u.idleIfEmpty()
	}
	return ch, id, nil
}

// forget drops a request that will not wait for its response any longer.
func (u *upConn) forget(id uint64) {
	u.mu.Lock()
	delete(u.pending, id)
	u.mu.Unlock()
	u.idleIfEmpty()
}

func (u *upConn) idleIfEmpty() {
	u.mu.Lock()
	if len(u.pending) == 0 && !u.closed {
		u.conn.SetReadDeadline(time.Now().Add(idleTimeout))
	}
	u.mu.Unlock()
}

func (u *upConn) readLoop() {
	br := bufio.NewReaderSize(u.conn, 32<<10)
	for {
		f, err := u.codec.Decode(br)
		if err != nil {
			u.close(err)
			return
		}
		if f.Kind == 0 { // a protocol that does not say: what comes back is a response
			f.Kind = Response
		}
		if f.Kind != Response && f.Kind != ErrorResponse {
			u.close(decodeErr("the upstream sent a %s where a response was expected", f.Kind))
			return
		}
		u.mu.Lock()
		ch := u.pending[f.ID]
		delete(u.pending, f.ID)
		if len(u.pending) == 0 {
			u.conn.SetReadDeadline(time.Now().Add(idleTimeout))
		}
		u.mu.Unlock()
		if ch != nil {
			ch <- f
		}
		// A response nobody waits for is for a request that timed out.
	}
}

func (u *upConn) close(err error) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed, u.err = true, err
	u.pending = nil
	close(u.done)
	u.mu.Unlock()
	u.conn.Close()
	u.pool.remove(u)
}

func maxID(c Codec) uint64 {
	if m, ok := c.(interface{ MaxID() uint64 }); ok {
		return m.MaxID()
	}
	return 0x7fffffff
}
