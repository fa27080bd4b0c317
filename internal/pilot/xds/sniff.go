package xds

import (
	"fmt"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshapi "istio.io/api/mesh/v1alpha1"
)

// Protocol detection on ports nothing declares a protocol for (Istio's
// "automatic protocol selection"): the listener's http_inspector reads the
// client's first bytes and names HTTP/1.x or HTTP/2 by ALPN-like values,
// and filter chains matching those values take the connection to an HTTP
// connection manager; every other connection, and one whose client has
// said nothing when the detection timeout passes, takes the TCP chain.

// plaintextHTTPALPN are the values http_inspector gives a plaintext
// HTTP/1.0, HTTP/1.1 or HTTP/2 (prior knowledge) connection, as Istio's
// detected-HTTP chains match them.
var plaintextHTTPALPN = []string{"http/1.0", "http/1.1", "h2c"}

// mtlsHTTPALPN are the protocols a mesh client offers over mTLS when it
// sends HTTP (Istio's sidecars, and mesh-proxy's HTTP pools), which tell
// an inbound detected port's HTTP from its TCP.
var mtlsHTTPALPN = []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}

func httpInspectorFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       "envoy.filters.listener.http_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&httpinspector.HttpInspector{})},
	}
}

// detectionTimeout is meshConfig protocolDetectionTimeout: how long a
// listener that inspects connections waits for the client's first bytes
// before it takes the connection as TCP. Istio's default is 0s: it waits
// as long as the client does (a server-first protocol on a port with no
// declared protocol then stalls; declare the port TCP).
func (pc *PushContext) detectionTimeout() *durationpb.Duration {
	d := pc.Snap.Mesh.GetProtocolDetectionTimeout()
	if d == nil || d.AsDuration() < time.Millisecond { // CheckProtocolDetectionTimeout refused the rest
		return durationpb.New(0)
	}
	return durationpb.New(d.AsDuration())
}

// CheckProtocolDetectionTimeout refuses a protocolDetectionTimeout Istio
// refuses: it must be 0s (no timeout) or at least 1ms.
func CheckProtocolDetectionTimeout(mc *meshapi.MeshConfig) error {
	d := mc.GetProtocolDetectionTimeout()
	if d == nil {
		return nil
	}
	if err := d.CheckValid(); err != nil {
		return fmt.Errorf("protocolDetectionTimeout: %v", err)
	}
	if v := d.AsDuration(); v != 0 && v < time.Millisecond {
		return fmt.Errorf("protocolDetectionTimeout: %s; want 0s (wait for the client's first bytes as long as it takes) or at least 1ms", v)
	}
	return nil
}

// sniffedHTTPMatch is the match of a detected port's HTTP chain: m's
// fields and the plaintext HTTP values (raw_buffer, so a client's own TLS
// offering http/1.1 by ALPN is not taken for plaintext HTTP).
func sniffedHTTPMatch(m *listenerv3.FilterChainMatch) *listenerv3.FilterChainMatch {
	out := &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: plaintextHTTPALPN}
	if m != nil {
		out.PrefixRanges, out.DestinationPort = m.PrefixRanges, m.DestinationPort
	}
	return out
}

// withDetection adds the http_inspector to l (and the tls_inspector its
// raw_buffer matches need), the mesh's detection timeout, and continuing
// to the chains without an application protocol when it passes.
func (pc *PushContext) withDetection(l *listenerv3.Listener, tlsInspector *listenerv3.ListenerFilter) {
	hasTLS := false
	for _, f := range l.ListenerFilters {
		if f.GetName() == tlsInspector.GetName() {
			hasTLS = true
		}
	}
	if !hasTLS {
		l.ListenerFilters = append(l.ListenerFilters, tlsInspector)
	}
	l.ListenerFilters = append(l.ListenerFilters, httpInspectorFilter())
	l.ListenerFiltersTimeout = pc.detectionTimeout()
	l.ContinueOnListenerFiltersTimeout = true
}
