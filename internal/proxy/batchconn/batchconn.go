// Package batchconn batches the writes made to a connection into fewer
// system calls.
//
// Go's HTTP/2 server and transport flush after nearly every frame: a gRPC
// unary call proxied by a sidecar writes its request as HEADERS, DATA and
// an empty END_STREAM DATA frame, each flushed on its own, and its answer as
// HEADERS, DATA and trailers, each flushed again. Every flush is a TLS
// record and a write system call, and a write on loopback delivers the
// bytes to the reader and wakes it: most of a sidecar's CPU on such calls.
// A Conn hands its writes to a goroutine of its own that runs after the
// writer yields, so the frames written together (up to the point the writer
// waits for something) leave in one system call.
package batchconn

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// maxPending bounds the bytes a Conn holds for its flusher; a Write beyond
// it waits, so a peer that stops reading still pushes back on the writer.
const maxPending = 256 << 10

// closeFlushTimeout bounds how long Close waits to hand over what is still held.
const closeFlushTimeout = time.Second

// Conn is a net.Conn whose writes are batched once Enable is called; until
// then it writes straight through.
type Conn struct {
	net.Conn

	mu      sync.Mutex
	on      bool
	pending []byte
	spare   []byte
	err     error // the flusher's write error, returned by every later Write
	closed  bool
	room    *sync.Cond // signalled when pending is taken
	kick    chan struct{}

	wmu sync.Mutex // held by whoever writes to Conn: the flusher, or Close
}

// New wraps c; its writes go straight through until Enable.
func New(c net.Conn) *Conn {
	b := &Conn{Conn: c}
	b.room = sync.NewCond(&b.mu)
	return b
}

// Enable starts batching: later writes are held and written by a goroutine
// of the Conn's, which ends with Close.
func (b *Conn) Enable() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.on || b.closed {
		return
	}
	b.on = true
	b.kick = make(chan struct{}, 1)
	go b.flusher()
}

// Write holds p for the flusher (or writes it, before Enable).
func (b *Conn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if !b.on {
		b.mu.Unlock()
		return b.Conn.Write(p)
	}
	for b.err == nil && !b.closed && len(b.pending) > 0 && len(b.pending)+len(p) > maxPending {
		b.room.Wait()
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	if b.closed {
		b.mu.Unlock()
		return 0, net.ErrClosed
	}
	b.pending = append(b.pending, p...)
	select { // under mu: Close closes kick under it too
	case b.kick <- struct{}{}:
	default:
	}
	b.mu.Unlock()
	return len(p), nil
}

func (b *Conn) flusher() {
	for range b.kick {
		// Let the goroutines that are ready run first: what they write
		// joins this batch instead of making the next one.
		runtime.Gosched()
		if !b.flush() {
			return
		}
	}
}

// flush writes what is held; false once the Conn is closed.
func (b *Conn) flush() bool {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	out := b.pending
	b.pending, b.spare = b.spare[:0], nil
	b.room.Broadcast()
	b.mu.Unlock()
	if len(out) == 0 {
		b.mu.Lock()
		b.spare = out
		b.mu.Unlock()
		return true
	}
	_, err := b.Conn.Write(out)
	b.mu.Lock()
	if err != nil && b.err == nil {
		b.err = err
		b.room.Broadcast()
	}
	if cap(out) <= maxPending {
		b.spare = out[:0]
	}
	b.mu.Unlock()
	return true
}

// Close writes what is still held (for at most a second), stops the
// flusher and closes the connection.
func (b *Conn) Close() error {
	b.mu.Lock()
	if !b.on || b.closed {
		b.closed = true
		b.mu.Unlock()
		return b.Conn.Close()
	}
	b.mu.Unlock()
	// A flusher blocked on a peer that does not read gives up by this deadline.
	b.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	b.wmu.Lock()
	b.mu.Lock()
	out, failed := b.pending, b.err != nil
	b.pending, b.closed = nil, true
	b.room.Broadcast()
	close(b.kick)
	b.mu.Unlock()
	if len(out) > 0 && !failed {
		b.Conn.Write(out)
	}
	b.wmu.Unlock()
	return b.Conn.Close()
}
