package listener

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"mesh.dev/mesh/internal/proxy/httpfilter"
)

// chainMatch is a compiled FilterChainMatch.
type chainMatch struct {
	port      uint32
	dstIPs    []netip.Prefix
	srcIPs    []netip.Prefix
	sni       []string
	transport string
	alpn      []string
	score     int
}

func compileChainMatch(m *listenerv3.FilterChainMatch, f string) (chainMatch, error) {
	cm := chainMatch{port: m.GetDestinationPort().GetValue(), sni: m.GetServerNames(), transport: m.GetTransportProtocol(), alpn: m.GetApplicationProtocols()}
	var err error
	if cm.dstIPs, err = prefixes(m.GetPrefixRanges(), f+".prefix_ranges"); err != nil {
		return cm, err
	}
	if cm.srcIPs, err = prefixes(m.GetSourcePrefixRanges(), f+".source_prefix_ranges"); err != nil {
		return cm, err
	}
	if len(m.GetSourcePorts()) > 0 || m.GetSourceType() != listenerv3.FilterChainMatch_ANY || len(m.GetDirectSourcePrefixRanges()) > 0 {
		return cm, fmt.Errorf("%s: source_ports, source_type and direct_source_prefix_ranges are not supported", f)
	}
	if cm.transport != "" && cm.transport != "tls" && cm.transport != "raw_buffer" {
		return cm, fmt.Errorf("%s.transport_protocol %q: want tls or raw_buffer", f, cm.transport)
	}
	// Envoy's precedence: destination port, destination IP, server name, transport, ALPN, source.
	if cm.port != 0 {
		cm.score += 32
	}
	if len(cm.dstIPs) > 0 {
		cm.score += 16
	}
	if len(cm.sni) > 0 {
		cm.score += 8
	}
	if cm.transport != "" {
		cm.score += 4
	}
	if len(cm.alpn) > 0 {
		cm.score += 2
	}
	if len(cm.srcIPs) > 0 {
		cm.score++
	}
	return cm, nil
}

func prefixes(rs []*corev3.CidrRange, f string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, r := range rs {
		a, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil {
			return nil, fmt.Errorf("%s[%d].address_prefix: %w", f, i, err)
		}
		bits := a.BitLen()
		if l := r.GetPrefixLen(); l != nil {
			bits = int(l.GetValue())
		}
		p, err := a.Prefix(bits)
		if err != nil {
			return nil, fmt.Errorf("%s[%d].prefix_len: %w", f, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// connInfo is what chain selection looks at.
type connInfo struct {
	dst, src netip.AddrPort
	tls      bool
	sni      string
	alpn     []string
	// tlsState is the handshake of a TLS connection the lean path handed to
	// net/http: net/http sees a wrapper, not a *tls.Conn, so requests get
	// their TLS state from here.
	tlsState *tls.ConnectionState
	// meta is the connection's dynamic metadata from network filters (a
	// LOG RBAC filter's access_log_hint), for the TCP access log; nil: none.
	meta *httpfilter.Metadata
}

func (m *chainMatch) matches(ci *connInfo) bool {
	if m.port != 0 && uint32(ci.dst.Port()) != m.port {
		return false
	}
	if len(m.dstIPs) > 0 && !anyPrefix(m.dstIPs, ci.dst.Addr()) {
		return false
	}
	if len(m.srcIPs) > 0 && !anyPrefix(m.srcIPs, ci.src.Addr()) {
		return false
	}
	if len(m.sni) > 0 && !sniMatch(m.sni, ci.sni) {
		return false
	}
	if m.transport == "tls" && !ci.tls || m.transport == "raw_buffer" && ci.tls {
		return false
	}
	if len(m.alpn) > 0 {
		ok := false
		for _, want := range m.alpn {
			for _, got := range ci.alpn {
				if want == got {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func anyPrefix(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func sniMatch(names []string, sni string) bool {
	for _, n := range names {
		if n == sni || strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) {
			return true
		}
	}
	return false
}

// sniRank is how specifically names match sni: 0 for none, the wildcard
// suffix's length for a wildcard, above any suffix for the exact name.
func sniRank(names []string, sni string) int {
	best := 0
	for _, n := range names {
		switch {
		case n == sni:
			return 1 << 16
		case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) && len(n) > best:
			best = len(n)
		}
	}
	return best
}

// peekedConn replays bytes read while inspecting the connection.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// inspect looks at the first bytes: a TLS ClientHello gives SNI and ALPN, a
// plaintext preface tells HTTP/2 from HTTP/1 (sniffHTTP), as tls_inspector and
// http_inspector do. timedOut reports that the client's bytes had not settled
// the inspection within timeout (0: no limit).
func inspect(c net.Conn, ci *connInfo, wantTLS, wantHTTP bool, timeout time.Duration) (_ net.Conn, timedOut bool) {
	size := 4096
	if wantHTTP {
		size = sniffSize
	}
	br := bufio.NewReaderSize(c, size)
	pc := &peekedConn{Conn: c, r: br}
	if timeout > 0 {
		c.SetReadDeadline(time.Now().Add(timeout))
		defer c.SetReadDeadline(time.Time{})
	}
	first, err := br.Peek(1)
	if err != nil {
		return pc, errors.Is(err, os.ErrDeadlineExceeded)
	}
	if first[0] == 0x16 && wantTLS {
		ci.tls = true
		hello := readHello(br)
		if hello != nil {
			ci.sni = hello.ServerName
			ci.alpn = hello.SupportedProtos
		}
		return pc, false
	}
	if wantHTTP {
		proto, err := sniffHTTP(br)
		if proto != "" {
			ci.alpn = []string{proto}
		}
		return pc, errors.Is(err, os.ErrDeadlineExceeded)
	}
	return pc, false
}

// readHello parses the ClientHello from buffered bytes without consuming them,
// by running a throwaway server handshake over a read-only copy.
func readHello(br *bufio.Reader) *tls.ClientHelloInfo {
	// A record header gives the length of the first record; the hello fits in it in practice.
	hdr, err := br.Peek(5)
	if err != nil {
		return nil
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	data, err := br.Peek(min(5+n, br.Size()))
	if err != nil && len(data) < 5+n {
		return nil
	}
	var info *tls.ClientHelloInfo
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		cp := *h
		info = &cp
		return nil, io.EOF
	}}
	_ = tls.Server(readOnlyConn{r: bytes.NewReader(data)}, cfg).Handshake()
	return info
}

type readOnlyConn struct {
	net.Conn
	r io.Reader
}

func (c readOnlyConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c readOnlyConn) Write(p []byte) (int, error)        { return 0, io.ErrClosedPipe }
func (c readOnlyConn) Close() error                       { return nil }
func (c readOnlyConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c readOnlyConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c readOnlyConn) SetDeadline(t time.Time) error      { return nil }
func (c readOnlyConn) SetReadDeadline(t time.Time) error  { return nil }
func (c readOnlyConn) SetWriteDeadline(t time.Time) error { return nil }
