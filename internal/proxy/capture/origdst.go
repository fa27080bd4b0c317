// Package capture is transparent traffic interception: the iptables rules an
// init step writes into a pod's network namespace, and the SO_ORIGINAL_DST
// lookup the proxy uses to learn where a redirected connection was going.
package capture

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
)

// soOriginalDst is SO_ORIGINAL_DST from linux/netfilter_ipv4.h.
const soOriginalDst = 80

// OriginalDst returns the destination a REDIRECTed TCP connection was sent to;
// false when the connection was not redirected (or is not TCP/IPv4).
func OriginalDst(c net.Conn) (netip.AddrPort, bool) {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, false
	}
	var out netip.AddrPort
	var found bool
	raw.Control(func(fd uintptr) {
		// The kernel answers with a sockaddr_in; IPv6Mreq is a 20-byte buffer wide enough to receive it.
		m, err := syscall.GetsockoptIPv6Mreq(int(fd), syscall.SOL_IP, soOriginalDst)
		if err != nil {
			return
		}
		b := m.Multiaddr
		if binary.LittleEndian.Uint16(b[0:2]) != syscall.AF_INET {
			return
		}
		port := binary.BigEndian.Uint16(b[2:4])
		out = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), port)
		found = true
	})
	if !found {
		return netip.AddrPort{}, false
	}
	// A connection that was not redirected reports its own local address; that is no capture.
	if la, ok := tc.LocalAddr().(*net.TCPAddr); ok && la.AddrPort() == out {
		return out, false
	}
	return out, true
}
