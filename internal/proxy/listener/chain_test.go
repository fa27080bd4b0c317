package listener

import (
	"net/netip"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestStrictPortRefusesPlaintext is a sidecar's inbound listener with STRICT
// mTLS on 9080 (a TLS chain only) next to the catch-all passthrough chain:
// plaintext to 9080 must find no chain, as in Envoy, where the destination
// port narrows the candidates before the transport protocol is looked at.
// Falling back to the catch-all would serve the app without mTLS.
func TestStrictPortRefusesPlaintext(t *testing.T) {
	mk := func(name string, m *listenerv3.FilterChainMatch) *chain {
		cm, err := compileChainMatch(m, name)
		if err != nil {
			t.Fatal(err)
		}
		return &chain{name: name, match: cm}
	}
	strict := mk("inbound_9080_mtls", &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), TransportProtocol: "tls"})
	catchall := mk("catchall", &listenerv3.FilterChainMatch{})
	l := &Listener{Name: "virtualInbound", chains: []*chain{strict, catchall}}
	dst := netip.MustParseAddrPort("198.18.0.10:9080")
	other := netip.MustParseAddrPort("198.18.0.10:7070")
	for _, tc := range []struct {
		name string
		ci   connInfo
		want *chain
	}{
		{"mTLS to the strict port", connInfo{dst: dst, tls: true}, strict},
		{"plaintext to the strict port", connInfo{dst: dst}, nil},
		{"plaintext to a port no chain names", connInfo{dst: other}, catchall},
		{"TLS to a port no chain names", connInfo{dst: other, tls: true}, catchall},
	} {
		if got := l.selectChain(&tc.ci); got != tc.want {
			t.Errorf("%s: got chain %s, want %s", tc.name, chainName(got), chainName(tc.want))
		}
	}
}

func chainName(c *chain) string {
	if c == nil {
		return "none (connection closed)"
	}
	return c.name
}

// TestExactServerNameBeatsWildcard: a gateway with a passthrough chain for
// *.example.com and one for a.example.com sends a.example.com to the
// exact one, as Envoy does, whichever is listed first; the longer wildcard
// wins over the shorter.
func TestExactServerNameBeatsWildcard(t *testing.T) {
	mk := func(name string, names ...string) *chain {
		cm, err := compileChainMatch(&listenerv3.FilterChainMatch{ServerNames: names, TransportProtocol: "tls"}, name)
		if err != nil {
			t.Fatal(err)
		}
		return &chain{name: name, match: cm}
	}
	wide, narrow, exact := mk("wide", "*.example.com"), mk("narrow", "*.b.example.com"), mk("exact", "a.example.com")
	l := &Listener{Name: "gw", chains: []*chain{wide, narrow, exact}}
	dst := netip.MustParseAddrPort("127.0.0.1:8443")
	for sni, want := range map[string]*chain{"a.example.com": exact, "x.b.example.com": narrow, "c.example.com": wide, "example.org": nil} {
		if got := l.selectChain(&connInfo{dst: dst, tls: true, sni: sni}); got != want {
			t.Errorf("SNI %s: got chain %s, want %s", sni, chainName(got), chainName(want))
		}
	}
}
