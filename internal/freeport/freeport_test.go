package freeport

import (
	"fmt"
	"net"
	"testing"
)

// TestPortsAreBindableAndDistinct: each port handed out can be bound on
// 127.0.0.1 by its caller, none is handed out twice, and none comes from
// the range listeners on port 0 take theirs from.
func TestPortsAreBindableAndDistinct(t *testing.T) {
	seen := map[int]bool{}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for range 200 {
		p := T(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < low || p >= high {
			t.Fatalf("port %d outside %d-%d", p, low, high-1)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("bind the port handed out: %v", err)
		}
		held = append(held, ln)
	}
	// A port-0 listener gets its port from the ephemeral range, never one
	// of ours.
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		if p := ln.Addr().(*net.TCPAddr).Port; p >= low && p < high {
			t.Fatalf("a port-0 listener got %d, inside the range handed out; the machine's ephemeral range overlaps it", p)
		}
	}
}
