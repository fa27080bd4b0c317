// Package accesslog is mesh-proxy's access logging in Envoy's shape: an
// AccessLog config (file, stdout or stderr logger, text or JSON format of
// Envoy command operators, an optional filter) compiles into a Logger that
// writes one line per finished request or TCP connection (an Entry).
package accesslog

import (
	"crypto/tls"
	"net/http"
	"time"

	"mesh.dev/mesh/internal/celexpr"
)

// Entry is one finished HTTP request or TCP connection, as access logs and
// the proxy's metrics see it. Request paths fill it once per request; a
// logger must not keep it past Log.
type Entry struct {
	Start        time.Time
	Duration     time.Duration
	Method, Path string
	Host         string
	Protocol     string // HTTP/1.1, HTTP/2, ... or TCP
	Status       int    // 0 for TCP
	Flags        string // Envoy response flags: NR, UH, UO, UT, UF, FI, DI, RBAC...; "-" for none
	Details      string // RESPONSE_CODE_DETAILS; "" lets the logger derive it
	Cluster      string
	UpstreamHost string
	// UpstreamLocal is the proxy's own address on the upstream connection, when one was made.
	UpstreamLocal string
	// UpstreamFailure is why the upstream connection or its TLS failed ("" when it did not).
	UpstreamFailure string
	Route           string
	BytesIn         int64
	BytesOut        int64
	Remote          string // downstream remote address, host:port
	Local           string // downstream local address, host:port (the original destination when redirected)
	SNI             string
	TLS             *tls.ConnectionState // downstream TLS; nil for plaintext
	Principal       string               // the downstream peer's SPIFFE identity
	Direction       string
	Listener        string
	RequestID       string
	UserAgent       string
	GRPC            bool
	Header          http.Header // request headers
	RespHeader      http.Header // response headers (nil when none were kept)
	// Meta is the request's filter state (Envoy's dynamic metadata by
	// namespace), for %DYNAMIC_METADATA(...)% and %FILTER_STATE(...)%; nil for none.
	Meta Metadata
	// Trace is the span this proxy made for the request, when tracing is on.
	TraceID, SpanID string
}

// Metadata is per-request state filters leave, keyed by namespace (httpfilter.Metadata implements it).
type Metadata interface {
	Get(ns string) any
}

// responseDetails is Envoy's RESPONSE_CODE_DETAILS for the common cases.
func (e *Entry) responseDetails() string {
	if e.Details != "" {
		return e.Details
	}
	if e.Protocol == "TCP" {
		return ""
	}
	switch e.Flags {
	case "", "-":
		if e.UpstreamHost != "" {
			return "via_upstream"
		}
		return ""
	case "NR":
		return "route_not_found"
	case "NC":
		return "cluster_not_found"
	case "UH":
		return "no_healthy_upstream"
	case "UF":
		return "upstream_reset_before_response_started{connection_failure}"
	case "UT":
		return "upstream_response_timeout"
	case "UO":
		return "upstream_reset_before_response_started{overflow}"
	case "RBAC":
		return "rbac_access_denied_matched_policy[none]"
	case "FI":
		return "fault_filter_abort"
	case "RL":
		return "local_rate_limited"
	case "UAEX":
		return "ext_authz_denied"
	}
	return ""
}

// Attributes are Envoy's attributes (request.*, response.*, connection.*,
// source.*, destination.*, upstream.*, xds.*) over e, for CEL expressions
// elsewhere (the stats filter's dimensions).
func Attributes(e *Entry) celexpr.Object { return attrs{e} }
