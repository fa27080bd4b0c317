package batchconn

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	t.Cleanup(func() { c.Close(); s.Close() })
	b := New(c)
	b.Enable()
	return b, s
}

// Every byte written arrives, in order, and Close hands over what is still held before the peer sees EOF.
func TestWritesArriveInOrderAndCloseFlushes(t *testing.T) {
	b, peer := pair(t)
	var want bytes.Buffer
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 2000; i++ {
			p := bytes.Repeat([]byte{byte(i)}, 1+i%700)
			want.Write(p)
			if _, err := b.Write(p); err != nil {
				done <- err
				return
			}
		}
		done <- b.Close()
	}()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %d bytes, wrote %d; first difference at %d", len(got), want.Len(), firstDiff(got, want.Bytes()))
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// A peer that stops reading stops the writer: the Conn holds a bounded amount, not everything written.
func TestWriterWaitsForAPeerThatDoesNotRead(t *testing.T) {
	c, peer := net.Pipe() // a write waits for its read
	defer peer.Close()
	b := New(c)
	b.Enable()
	total := 4 * maxPending
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := make([]byte, 1024)
		for n := 0; n < total; n += len(chunk) {
			if _, err := b.Write(chunk); err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
		t.Fatalf("%d bytes were taken with nobody reading", total)
	case <-time.After(200 * time.Millisecond):
	}
	got, _ := io.ReadFull(peer, make([]byte, total))
	<-done
	if got != total {
		t.Fatalf("read %d of %d bytes", got, total)
	}
	b.Close()
}

// A write error of the flusher's is returned by a later Write.
func TestWriteErrorReachesTheWriter(t *testing.T) {
	b, peer := pair(t)
	peer.Close()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = b.Write(make([]byte, 64<<10))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a closed peer never failed")
	}
	b.Close()
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
