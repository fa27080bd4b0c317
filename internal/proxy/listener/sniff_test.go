package listener

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestClassifyHTTP(t *testing.T) {
	cases := []struct {
		in    string
		proto string
		done  bool
	}{
		{"", "", false},
		{"G", "", false},
		{"GET", "", false},
		{"GET /", "", false},
		{"GET /a?b=c HTTP/1.", "", false},
		{"GET /a?b=c HTTP/1.1", "", false},
		{"GET /a?b=c HTTP/1.1\r", "", false},
		{"GET /a?b=c HTTP/1.1\r\nHost: x\r\n", "http/1.1", true},
		{"POST * HTTP/1.0\r\n", "http/1.0", true},
		{"M-SEARCH * HTTP/1.1\n", "http/1.1", true},
		{"PRI * HTTP/2.0\r\n", "", false}, // a prefix of the HTTP/2 preface
		{h2Preface, "h2c", true},
		{h2Preface + "\x00\x00\x12\x04", "h2c", true},
		{"PRI * HTTP/2.0\r\n\r\nXX", "", true},
		{"GET\n", "", true},
		{"get / HTTP/1.1\r\n", "", true},
		{"GET  / HTTP/1.1\r\n", "", true},
		{"GET / HTTP/2\r\n", "", true},
		{"GET / HTTP/1.1 \r\n", "", true},
		{"hello\n", "", true},
		{"\x16\x03\x01\x02\x00", "", true},
		{"*3\r\n$3\r\nSET\r\n", "", true},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "", true}, // no method is this long
	}
	for _, c := range cases {
		proto, done := classifyHTTP([]byte(c.in))
		if proto != c.proto || done != c.done {
			t.Errorf("classifyHTTP(%q) = %q, %v; want %q, %v", c.in, proto, done, c.proto, c.done)
		}
	}
}

// TestSniffDecidesOnWhatArrived: over a real socket, a client that writes
// a few bytes that cannot be HTTP and then waits is decided at once (no
// deadline needed); a request line written in pieces is read to its end;
// bytes that may still be HTTP when the deadline passes are not HTTP,
// and the deadline is reported.
func TestSniffDecidesOnWhatArrived(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sniff := func(t *testing.T, writes []string, deadline time.Duration) (string, error) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		go func() {
			for _, w := range writes {
				c.Write([]byte(w))
				time.Sleep(20 * time.Millisecond)
			}
		}()
		s.SetReadDeadline(time.Now().Add(deadline))
		br := bufio.NewReaderSize(s, sniffSize)
		if _, err := br.Peek(1); err != nil {
			t.Fatal(err)
		}
		return sniffHTTP(br)
	}
	if proto, err := sniff(t, []string{"PING\r\n"}, time.Minute); proto != "" || err != nil {
		t.Errorf("PING: %q, %v; want not HTTP, decided without waiting", proto, err)
	}
	if proto, err := sniff(t, []string{"GE", "T /pa", "th HTTP/1", ".1\r", "\nHost: a\r\n\r\n"}, time.Minute); proto != "http/1.1" || err != nil {
		t.Errorf("request line in pieces: %q, %v; want http/1.1", proto, err)
	}
	if proto, err := sniff(t, []string{"GET /"}, 300*time.Millisecond); proto != "" || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("unfinished request line: %q, %v; want not HTTP at the deadline", proto, err)
	}
}
