package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/proxy/batchconn"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

// socketMatchFilter is the filter_metadata key transport_socket_matches are matched under.
const socketMatchFilter = "envoy.transport_socket_match"

// socket is one upstream transport socket (plaintext or TLS) with the
// connection pools that run over it; a cluster with transport_socket_matches
// has one per match besides its default.
type socket struct {
	name string // the match name, or "default" for the cluster's transport_socket
	tls  *tls.Config

	// The pooled transports are built on first use: a sidecar holds a
	// cluster for every service it can see and sends to few of them, and an
	// http.Transport with its TLS configuration is most of what an unused
	// cluster would otherwise keep.
	c              *Cluster
	idle           time.Duration
	hasH2, h1IsH2  bool // an HTTP/2 pool exists; HTTP/1.1 requests use it too
	h1Once, h2Once sync.Once
	h1t, h2t       atomic.Pointer[http.Transport]

	leanOnce sync.Once
	leanTLS  *tls.Config // tls with ALPN narrowed to HTTP/1.1, for the lean path
}

// socketMatch is one compiled Cluster.TransportSocketMatch.
type socketMatch struct {
	match *structpb.Struct
	sock  *socket
}

// poolOptions are the HTTP protocol choices shared by every socket of a cluster.
type poolOptions struct {
	h2   bool
	idle time.Duration
}

// compileSockets builds the default socket and one per transport_socket_matches entry.
func (c *Cluster) compileSockets(pc *clusterv3.Cluster, opts Options, po poolOptions, f string) error {
	def, err := c.compileSocket("default", pc.GetTransportSocket(), opts, po, f+": transport_socket")
	if err != nil {
		return err
	}
	c.def = def
	c.poolIdle = po.idle
	for i, m := range pc.GetTransportSocketMatches() {
		field := fmt.Sprintf("%s: transport_socket_matches[%d]", f, i)
		name := m.GetName()
		if name == "" {
			name = fmt.Sprintf("match-%d", i)
		}
		s, err := c.compileSocket(name, m.GetTransportSocket(), opts, po, field+".transport_socket")
		if err != nil {
			return err
		}
		c.matches = append(c.matches, socketMatch{match: m.GetMatch(), sock: s})
	}
	// Hosts with no metadata (ORIGINAL_DST) still go through the matches: a catch-all applies to them.
	c.bare = c.socketFor(nil, nil)
	c.leanH1 = c.computeLeanH1()
	return nil
}

// compileSocket builds a socket from a TransportSocket; nil means plaintext.
func (c *Cluster) compileSocket(name string, ts *corev3.TransportSocket, opts Options, po poolOptions, field string) (*socket, error) {
	s := &socket{name: name}
	switch ts.GetName() {
	case "":
		if ts != nil {
			return nil, fmt.Errorf("%s.name: required (envoy.transport_sockets.tls or envoy.transport_sockets.raw_buffer)", field)
		}
	case "envoy.transport_sockets.tls", "tls":
		uc := &tlsv3.UpstreamTlsContext{}
		if err := ts.GetTypedConfig().UnmarshalTo(uc); err != nil {
			return nil, fmt.Errorf("%s.typed_config: want UpstreamTlsContext: %w", field, err)
		}
		cfg, err := meshtls.ClientConfig(uc, opts.Secrets, field)
		if err != nil {
			return nil, err
		}
		s.tls = cfg
	case "envoy.transport_sockets.raw_buffer", "raw_buffer":
	default:
		return nil, fmt.Errorf("%s: %q is not supported (supported: envoy.transport_sockets.tls, envoy.transport_sockets.raw_buffer)", field, ts.GetName())
	}
	s.c, s.idle = c, po.idle
	s.hasH2 = po.h2 || c.downProto
	s.h1IsH2 = po.h2 && !c.downProto
	return s, nil
}

// h1 returns the pool HTTP/1.1 requests take (the HTTP/2 one when the cluster speaks only HTTP/2).
func (s *socket) h1() *http.Transport {
	if s.h1IsH2 {
		return s.h2()
	}
	s.h1Once.Do(func() { s.h1t.Store(s.c.newTransport(false, s.idle, s.tls)) })
	return s.h1t.Load()
}

// h2 returns the HTTP/2 pool, nil when the cluster has none.
func (s *socket) h2() *http.Transport {
	if !s.hasH2 {
		return nil
	}
	s.h2Once.Do(func() { s.h2t.Store(s.c.newTransport(true, s.idle, s.tls)) })
	return s.h2t.Load()
}

// closeIdle closes the idle connections of the pools built so far.
func (s *socket) closeIdle() {
	for _, t := range []*http.Transport{s.h1t.Load(), s.h2t.Load()} {
		if t != nil {
			t.CloseIdleConnections()
		}
	}
}

// socketFor picks the transport socket for an endpoint: the first match whose
// criteria are all present in the endpoint's metadata (the locality's when
// the endpoint has none), else the cluster's transport_socket.
func (c *Cluster) socketFor(endpoint, locality *corev3.Metadata) *socket {
	if len(c.matches) == 0 {
		return c.def
	}
	md := endpoint.GetFilterMetadata()[socketMatchFilter]
	if md == nil {
		md = locality.GetFilterMetadata()[socketMatchFilter]
	}
	for _, m := range c.matches {
		if subset(m.match, md) {
			return m.sock
		}
	}
	return c.def
}

// subset reports whether every field of want is in have with an equal value.
func subset(want, have *structpb.Struct) bool {
	for k, v := range want.GetFields() {
		hv, ok := have.GetFields()[k]
		if !ok || !proto.Equal(v, hv) {
			return false
		}
	}
	return true
}

// endpointSocket is socketFor for one LbEndpoint of a LocalityLbEndpoints.
func (c *Cluster) endpointSocket(le *endpointv3.LocalityLbEndpoints, lbe *endpointv3.LbEndpoint) *socket {
	return c.socketFor(lbe.GetMetadata(), le.GetMetadata())
}

// sockOf returns the socket requests to h travel over.
func (c *Cluster) sockOf(h *Host) *socket {
	if h.sock != nil {
		return h.sock
	}
	return c.def
}

// sockets returns every socket of the cluster, the default first.
func (c *Cluster) sockets() []*socket {
	out := []*socket{c.def}
	for _, m := range c.matches {
		out = append(out, m.sock)
	}
	return out
}

// TransportSocketName returns the name of the transport socket match that
// serves h ("default" for the cluster's own transport_socket).
func (c *Cluster) TransportSocketName(h *Host) string { return c.sockOf(h).name }

// H2FrameSize is the largest HTTP/2 frame mesh-proxy accepts, upstream and
// downstream: 16 KiB, the protocol's default, which Envoy keeps. Go's own
// default is 1 MiB, and a Go HTTP/2 client sizes the scratch buffer it
// copies each request body through by what the server advertises (up to
// 512 KiB per stream), a cost paid on every proxied gRPC call when the
// buffer pools have been emptied by a collection.
const H2FrameSize = 16 << 10

// H2EncoderTableSize caps the HPACK dynamic table mesh-proxy encodes
// headers with, upstream and downstream: one byte, so no field is ever
// indexed. A proxied request carries fields new on every request
// (x-request-id, grpc-timeout); each one indexed evicts the oldest entries,
// and Go's encoder pays for every eviction in map work, 5-6% of each
// sidecar's CPU on gRPC unary calls under the mtls-pair bench. Literal
// fields cost some bytes on the wire, which a sidecar pair on one node or
// one cluster network can spare better than CPU.
const H2EncoderTableSize = 1

// H2Config is the HTTP/2 configuration of every pool and server of mesh-proxy.
func H2Config() *http.HTTP2Config {
	return &http.HTTP2Config{MaxReadFrameSize: H2FrameSize, MaxEncoderHeaderTableSize: H2EncoderTableSize}
}

func (c *Cluster) newTransport(h2 bool, idle time.Duration, tcfg *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: c.connectTimeout, KeepAlive: 30 * time.Second}
	tcfg = httpALPN(tcfg, h2)
	t := &http.Transport{
		DialContext:         c.dialer(d),
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     idle,
		TLSClientConfig:     tcfg,
		DisableCompression:  true,
		// Envoy's max_connections caps a cluster; per host is the closest the pool offers.
		MaxConnsPerHost: int(min(c.limits.conns, 1<<30)),
		// HTTP/2 frames as Envoy sizes them (the protocol's 16 KiB default)
		// rather than Go's 1 MiB: the peer's write buffers follow the size
		// advertised here.
		HTTP2: H2Config(),
	}
	p := new(http.Protocols)
	if h2 {
		if tcfg != nil {
			p.SetHTTP2(true)
		} else {
			p.SetUnencryptedHTTP2(true)
		}
	} else {
		p.SetHTTP1(true)
		if tcfg != nil && slices.Contains(tcfg.NextProtos, "h2") {
			p.SetHTTP2(true)
		}
	}
	t.Protocols = p
	if tcfg != nil {
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialTLS(ctx, t.DialContext, t.TLSClientConfig, network, addr)
		}
	} else if h2 {
		// Plaintext HTTP/2 (prior knowledge): its frames are batched from the start.
		dial := t.DialContext
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			bc := batchconn.New(c)
			bc.Enable()
			return bc, nil
		}
	}
	return t
}

// dialTLS is the pools' TLS dial: the handshake is ours rather than the
// transport's so the connection's session cache is bound to the secrets
// current as it starts (meshtls.Client). cfg is read at dial time: the
// transport adds its ALPN protocols to it before its first dial. As the
// transport did, a host name in addr is the SNI when the context names none.
func dialTLS(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), cfg *tls.Config, network, addr string) (net.Conn, error) {
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil {
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
	}
	// Under TLS, so that the records of frames written together leave in one system call.
	bc := batchconn.New(raw)
	tc := meshtls.Client(bc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		bc.Enable() // HTTP/1.1 writes a request at once; only HTTP/2 flushes per frame
	}
	return tc, nil
}

// offerH2 makes sure a TLS context offers h2, for a connection that speaks
// nothing else.
func offerH2(cfg *tls.Config) *tls.Config {
	if slices.Contains(cfg.NextProtos, "h2") {
		return cfg
	}
	out := cfg.Clone()
	out.NextProtos = append(slices.Clone(cfg.NextProtos), "h2")
	return out
}

// httpALPN adds the HTTP protocol an HTTP pool speaks to a TLS context's
// ALPN list when the list names only other protocols. Istio's mesh contexts
// offer "istio-peer-exchange" and "istio" (its sidecars swap them for
// istio-http/* on HTTP pools); a server that knows only h2 and http/1.1, as
// mesh-proxy's inbound listeners do, refuses a handshake with no protocol in
// common, so an HTTP pool must also offer its own.
//
// Over a mesh context (one offering "istio") the pool also offers
// istio-http/1.1 or istio-h2 first, as Istio's sidecars do: a server
// sidecar that detects protocols tells HTTP from TCP by them.
func httpALPN(cfg *tls.Config, h2 bool) *tls.Config {
	if cfg == nil || len(cfg.NextProtos) == 0 {
		return cfg
	}
	want, mesh := "http/1.1", "istio-http/1.1"
	if h2 {
		want, mesh = "h2", "istio-h2"
	}
	if slices.Contains(cfg.NextProtos, "h2") || slices.Contains(cfg.NextProtos, "http/1.1") {
		return cfg
	}
	out := cfg.Clone()
	out.NextProtos = append(slices.Clone(cfg.NextProtos), want)
	if slices.Contains(cfg.NextProtos, "istio") {
		out.NextProtos = append([]string{mesh}, out.NextProtos...)
	}
	return out
}
