package runtime

import (
	"net/netip"
	"testing"
)

// TestAddressesRoundRobinAcrossRuntimes: a runtime started on a subnet
// after another one hands out the addresses after the last one given, as
// host-local IPAM does, wrapping past .254; within a runtime a released
// address is given again only after all the others.
func TestAddressesRoundRobinAcrossRuntimes(t *testing.T) {
	dir := t.TempDir()
	start := func() *network {
		n := &network{subnet: 250, stateDir: dir}
		n.fillFree()
		return n
	}
	take := func(n *network) netip.Addr {
		t.Helper()
		a, err := n.allocate()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	first := start()
	if a := take(first); a.String() != "198.18.250.2" {
		t.Fatalf("first address on a fresh subnet: %s, want 198.18.250.2", a)
	}
	b := take(first)
	first.release(b)
	if a := take(first); a.String() != "198.18.250.4" {
		t.Fatalf("after releasing %s the runtime gave %s, want 198.18.250.4 (the released one last)", b, a)
	}
	if a := take(start()); a.String() != "198.18.250.5" {
		t.Fatalf("a runtime started after one that gave .4 gave %s, want 198.18.250.5", a)
	}
	late := start()
	for late.free[0].String() != "198.18.250.254" {
		take(late)
	}
	take(late)
	if a := take(start()); a.String() != "198.18.250.2" {
		t.Fatalf("after .254 the next runtime gave %s, want 198.18.250.2", a)
	}
}
