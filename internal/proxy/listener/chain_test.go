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
