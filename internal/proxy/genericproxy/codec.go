// Package genericproxy is Envoy's generic_proxy network filter
// (envoy.extensions.filters.network.generic_proxy.v3.GenericProxy) for
// request/response protocols other than HTTP: a codec cuts the byte stream
// into frames and reads each request's attributes (service, method, request
// id, metadata), a route table matches those attributes to a cluster, and a
// router sends the request upstream over pooled, multiplexed connections with
// the route's timeout and retries.
package genericproxy

import (
	"bufio"
	"errors"
	"fmt"
)

// Kind is what a frame is.
type Kind uint8

const (
	// Request expects a response carrying its request id.
	Request Kind = iota + 1
	// OneWay is a request with no response.
	OneWay
	// Response answers the request with the same id.
	Response
	// ErrorResponse answers it with a protocol-level error (a Thrift
	// TApplicationException, a non-OK status): the request failed.
	ErrorResponse
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "request"
	case OneWay:
		return "oneway"
	case Response:
		return "response"
	case ErrorResponse:
		return "error"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Frame is one whole message as a codec cut it out of the stream.
type Frame struct {
	Kind    Kind
	Service string // the service it is addressed to, where the protocol says ("" when not)
	Method  string
	ID      uint64            // request id: a response carries its request's
	Meta    map[string]string // metadata the protocol carries (headers, attachments)
	Raw     []byte            // the frame's bytes, exactly as they arrived

	// codec-private: where the request id sits, and the frame's format.
	idAt, idLen int
	format      uint8
	extra       int
}

// Codec reads frames off a stream and rewrites their request ids, so
// requests from many downstream connections can share one upstream
// connection. A Codec is shared by every connection: Decode keeps no state
// between calls.
type Codec interface {
	// Name is the protocol as logs and metrics name it, e.g. "thrift".
	Name() string
	// Key identifies the codec's settings: upstream connections are pooled per key.
	Key() string
	// Decode reads the next whole frame. It returns io.EOF at a clean end of
	// stream and a *DecodeError when the bytes are not this protocol.
	Decode(r *bufio.Reader) (*Frame, error)
	// WithID returns f's bytes carrying request id id instead of f.ID.
	WithID(f *Frame, id uint64) ([]byte, error)
	// Reply is a local error response to req that the downstream client reads
	// as a failed call, or nil when the protocol has no way to say so (the
	// proxy then closes the downstream connection).
	Reply(req *Frame, kind ReplyKind, msg string) []byte
}

// ReplyKind is why the proxy answered a request itself.
type ReplyKind uint8

const (
	ReplyNoRoute ReplyKind = iota + 1
	ReplyNoCluster
	ReplyNoHealthyUpstream
	ReplyOverflow
	ReplyTimeout
	ReplyUpstreamFailure
)

func (k ReplyKind) String() string {
	switch k {
	case ReplyNoRoute:
		return "no route"
	case ReplyNoCluster:
		return "no cluster"
	case ReplyNoHealthyUpstream:
		return "no healthy upstream"
	case ReplyOverflow:
		return "upstream overflow"
	case ReplyTimeout:
		return "upstream request timeout"
	case ReplyUpstreamFailure:
		return "upstream connect error or disconnect"
	}
	return "error"
}

// status is the HTTP-like code logs and metrics give a local reply, as
// Envoy's router gives the same failures: 404 no route, 504 timeout, 503 the rest.
func (k ReplyKind) status() int {
	switch k {
	case ReplyNoRoute:
		return 404
	case ReplyTimeout:
		return 504
	}
	return 503
}

// flags is the access log's response flag for a local reply.
func (k ReplyKind) flags() string {
	switch k {
	case ReplyNoRoute:
		return "NR"
	case ReplyNoCluster:
		return "NC"
	case ReplyNoHealthyUpstream:
		return "UH"
	case ReplyOverflow:
		return "UO"
	case ReplyTimeout:
		return "UT"
	case ReplyUpstreamFailure:
		return "UF"
	}
	return "-"
}

// DecodeError is a stream that is not (or no longer) the codec's protocol.
type DecodeError struct{ Reason string }

func (e *DecodeError) Error() string { return "decode: " + e.Reason }

func decodeErr(format string, a ...any) error {
	return &DecodeError{Reason: fmt.Sprintf(format, a...)}
}

// IsDecodeError reports whether err is a protocol error (not an I/O one).
func IsDecodeError(err error) bool {
	var d *DecodeError
	return errors.As(err, &d)
}

// defaultMaxFrame bounds a frame the codecs accept when the config sets none.
const defaultMaxFrame = 16 << 20
