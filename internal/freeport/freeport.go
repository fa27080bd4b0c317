// Package freeport picks TCP ports on 127.0.0.1 for servers that bind them
// later (a sandbox component, a proxy listener from config).
//
// A port taken from the kernel with a listen on port 0 and closed again
// comes from the ephemeral range (ip_local_port_range, 32768-60999 by
// default), the range every other listener on port 0 and every outgoing
// connection's source port is also drawn from: between the pick and the
// bind, a server started in between, or a connection, may take it, and
// the late binder fails or a client reaches the wrong server. Ports here
// come from below that range instead, where only explicit binds go, and
// are never handed out twice by one process.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// The range ports are picked from: below Linux's default ephemeral range,
// above the registered ports most daemons use.
const (
	low  = 20000
	high = 32000
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Get returns a port that is free on 127.0.0.1 now and not handed out
// before by this process.
func Get() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 2000 {
		port := low + rand.IntN(high-low)
		if handed[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken by another process
		}
		ln.Close()
		handed[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port on 127.0.0.1 in %d-%d after 2000 tries", low, high-1)
}

// T is Get for tests: it fails the test when no port is free.
func T(t testing.TB) int {
	t.Helper()
	port, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
