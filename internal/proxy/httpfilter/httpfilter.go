// Package httpfilter is the HTTP filter chain an HttpConnectionManager runs
// before its router, in Envoy's shape: the HCM's http_filters are compiled
// by type URL into one ordered Chain per listener config, and both request
// paths of mesh-proxy (the lean HTTP/1.1 loop and the net/http server) run
// that chain, and nothing else, for every request.
//
// Writing a filter: implement Filter (the request-headers phase), and
// optionally Encoder (response headers) and BodyDecoder (the buffered
// request body). Give the agent a Factory naming the filter's config type
// URLs and, if it has one, its per-route config type; the registry the agent
// builds lists every factory (no init() registration). A filter reads the
// request from the Stream, may change its headers, and either returns
// Continue or answers with Stream.SendLocalReply (which returns Stop). The
// Stream is embedded in each path's per-request state, so filters must not
// keep it past the call.
package httpfilter

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/router"
	"mesh.dev/mesh/internal/proxy/runtime"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

// Status is what a filter tells the chain after a phase.
type Status uint8

const (
	// Continue runs the next filter, and the router after the last.
	Continue Status = iota
	// Stop ends the request here: the filter made a local reply, or the
	// request was abandoned (the client went away while a filter waited).
	Stop
)

// Filter is one HTTP filter instance, compiled once per HCM config and shared by all its requests.
type Filter interface {
	// DecodeHeaders sees the request head before the router does.
	DecodeHeaders(s *Stream) Status
}

// Encoder is a Filter with a response-headers phase: it sees the status and
// may edit the headers of every response of a request it decoded (upstream
// answers and local replies alike), before they are written.
type Encoder interface {
	EncodeHeaders(s *Stream, code int, h http.Header)
}

// BodyDecoder is a Filter that asks for the request body: the request paths
// buffer it (up to the HCM's buffer limit) and pass it whole once every
// filter's DecodeHeaders has continued.
type BodyDecoder interface {
	DecodeBody(s *Stream, body []byte) Status
}

// BodyEncoder is a Filter with a response-body phase: it gets an upstream
// answer's whole body (buffered up to 1 MiB; a larger one is answered 500,
// as Envoy does when a buffering filter overflows) and returns the body to
// send, after the router and before the response-headers phase. HCMs with
// such a filter are served on the net/http path, which can buffer answers.
type BodyEncoder interface {
	EncodeBody(s *Stream, code int, h http.Header, body []byte) []byte
}

// Completer is a Filter with a completion phase: it is told how every
// request ended (the stats filter records Istio's metrics there).
type Completer interface {
	Complete(s *Stream, d *Done)
}

// Done is how a request ended.
type Done struct {
	Code     int    // the response status sent downstream
	Flags    string // Envoy's response flags, "-" for none
	Duration time.Duration
	BytesIn  int64  // request body bytes
	BytesOut int64  // response body bytes
	Cluster  string // the upstream cluster, "" when none was picked
	// GRPCStatus is the grpc-status the response carried (trailers or
	// headers), "" when none.
	GRPCStatus string
	RespHeader http.Header // nil when the path kept none
}

// Peer is the downstream connection as filters see it.
type Peer struct {
	Remote, Local netip.AddrPort
	SNI           string
	TLS           *tls.ConnectionState // nil for plaintext

	principal    string
	principalSet bool
}

// Principal is the peer's SPIFFE identity from its mTLS certificate ("" for plaintext), computed once per request.
func (p *Peer) Principal() string {
	if !p.principalSet {
		p.principal, p.principalSet = meshtls.Principal(p.TLS), true
	}
	return p.principal
}

// LocalReply is an answer the proxy makes itself.
type LocalReply struct {
	Code   int
	Header http.Header // extra headers; nil for none
	Body   string      // sent as text/plain when not empty and no Content-Type is given
}

// Stream is one request as filters see it, the same on every request path.
// Request paths embed it in their per-request state and call Reset before
// each request, so it costs no allocation.
type Stream struct {
	Request  *http.Request
	Peer     Peer
	Route    *router.Route           // the matched route; nil when none matched (the router then answers 404)
	Weighted *router.WeightedCluster // the picked weighted cluster, when the route splits traffic

	ctx      context.Context
	reply    LocalReply
	replied  bool
	flags    string
	meta     Metadata
	perRoute any    // the running filter's resolved per-route config
	active   uint64 // bit i: filter i ran its request phase, so it encodes the response
	addN     int
	add      [4][2]string // response headers filters asked for (AddResponseHeader); more go to addMore
	addMore  [][2]string
}

// AddResponseHeader sets a header on the response to this request, whatever
// answers it (the upstream or a local reply), for filters that decide a
// header at request time (x-ratelimit-*) and need no response phase.
func (s *Stream) AddResponseHeader(k, v string) {
	if s.addN < len(s.add) {
		s.add[s.addN] = [2]string{k, v}
		s.addN++
		return
	}
	s.addMore = append(s.addMore, [2]string{k, v})
}

// Encodes reports whether the response to this request gets headers from the filters.
func (s *Stream) Encodes(c *Chain) bool { return c.encoders || s.addN > 0 }

// Reset prepares the stream for a new request; ctx may be nil (the lean path: no cancellation).
func (s *Stream) Reset(ctx context.Context, r *http.Request, p Peer, rt *router.Route, wc *router.WeightedCluster) {
	s.meta.reset()
	*s = Stream{Request: r, Peer: p, Route: rt, Weighted: wc, ctx: ctx, meta: s.meta}
}

// Context ends when the client goes away (never on the lean path, where a request is served to the end).
func (s *Stream) Context() context.Context {
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}

// Done is Context().Done() without building a context on the lean path (nil there: never closes).
func (s *Stream) Done() <-chan struct{} {
	if s.ctx == nil {
		return nil
	}
	return s.ctx.Done()
}

// PerRoute is the running filter's per-route config (typed_per_filter_config
// under its name, compiled by its factory's NewPerRoute), taken from the most
// specific level that has one: weighted cluster, route, virtual host, route
// configuration. nil when no level configures it.
func (s *Stream) PerRoute() any { return s.perRoute }

// PerRouteOf is the per-route config registered under another filter's name.
func (s *Stream) PerRouteOf(name string) any {
	if fc := s.lookup(name); fc != nil && !fc.Disabled {
		return fc.Config
	}
	return nil
}

func (s *Stream) lookup(name string) *router.FilterConfig {
	if s.Weighted != nil && s.Weighted.PerFilter != nil {
		if fc, ok := s.Weighted.PerFilter[name]; ok {
			return fc
		}
	}
	if s.Route != nil && s.Route.PerFilter != nil {
		return s.Route.PerFilter[name]
	}
	return nil
}

// SendLocalReply answers the request from the proxy with the response flag
// Envoy would log (RBAC, FI, RL, UAEX...; "" for none) and returns Stop.
func (s *Stream) SendLocalReply(code int, h http.Header, body, flag string) Status {
	s.reply = LocalReply{Code: code, Header: h, Body: body}
	s.replied = true
	if flag != "" {
		s.SetFlag(flag)
	}
	return Stop
}

// Reply is the local reply a filter made; ok is false when none did.
func (s *Stream) Reply() (r *LocalReply, ok bool) { return &s.reply, s.replied }

// SetFlag adds a response flag for access logs (Envoy joins several with commas).
func (s *Stream) SetFlag(flag string) {
	if s.flags == "" {
		s.flags = flag
	} else if !strings.Contains(","+s.flags+",", ","+flag+",") {
		s.flags += "," + flag
	}
}

// Flags are the response flags the filters set, "" for none.
func (s *Stream) Flags() string { return s.flags }

// Meta is per-request state filters leave for later filters (JWT claims for RBAC, for example).
func (s *Stream) Meta() *Metadata { return &s.meta }

// Metadata is a small per-request map of filter state keyed by filter name (Envoy's dynamic metadata namespaces).
type Metadata struct {
	m map[string]any
}

// Set stores v under namespace ns.
func (md *Metadata) Set(ns string, v any) {
	if md.m == nil {
		md.m = map[string]any{}
	}
	md.m[ns] = v
}

// Get returns what namespace ns holds, nil when nothing.
func (md *Metadata) Get(ns string) any { return md.m[ns] }

func (md *Metadata) reset() {
	if len(md.m) > 0 {
		clear(md.m)
	}
}

// Env is what filters may use from the proxy when they are compiled.
type Env struct {
	Runtime *runtime.Runtime // runtime keys (layered_runtime); nil: none set
	// StatPrefix is the HCM's stats scope, "http.<stat_prefix>.", where Envoy puts most filters' counters.
	StatPrefix string
	// Cluster finds a cluster of the proxy's current config by name, for
	// filters that call a service (ext_authz); nil, or nil results, when
	// there is none.
	Cluster func(name string) *cluster.Cluster
	// Direction is the listener's traffic direction: "inbound", "outbound" or "" (gateways and unset).
	Direction string
	// Shared is the proxy's store of what filters keep across config
	// updates (Keep); nil: nothing is kept.
	Shared   *Shared
	counters *[]Counter
}

// Counter is one named statistic a filter keeps.
type Counter struct {
	Name  string
	Value *atomic.Int64
}

// Counter returns a counter the admin API shows under its full name; the same name gives the same counter within one chain.
func (e Env) Counter(name string) *atomic.Int64 {
	if e.counters == nil {
		return new(atomic.Int64)
	}
	for _, c := range *e.counters {
		if c.Name == name {
			return c.Value
		}
	}
	v := new(atomic.Int64)
	*e.counters = append(*e.counters, Counter{Name: name, Value: v})
	return v
}
