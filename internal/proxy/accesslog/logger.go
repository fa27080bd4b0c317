package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"

	"mesh.dev/mesh/internal/celexpr"
)

// Type URLs of the loggers and filters Compile accepts.
const (
	FileType   = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
	StdoutType = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	StderrType = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
	CELType    = "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"
)

// FlushInterval is how long a written line may wait in the buffer, as Envoy's file_flush_interval (1s by default).
var FlushInterval = time.Second

// Logger is one compiled access_log entry.
type Logger struct {
	sink   *sink
	format *Format
	filter func(*Entry) bool // nil: log everything
}

// Log writes e when the logger's filter lets it through.
func (l *Logger) Log(e *Entry) {
	if l.filter != nil && !l.filter(e) {
		return
	}
	var stack [1024]byte
	b := l.format.Append(stack[:0], e)
	l.sink.write(b)
}

// sink is an output shared by every logger writing to the same path; lines
// are buffered and flushed within FlushInterval, or when the buffer fills.
type sink struct {
	mu      sync.Mutex
	w       *bufio.Writer
	pending bool
}

var (
	sinksMu sync.Mutex
	sinks   = map[string]*sink{}
)

func sinkFor(path string) (*sink, error) {
	sinksMu.Lock()
	defer sinksMu.Unlock()
	if s := sinks[path]; s != nil {
		return s, nil
	}
	var w io.Writer
	switch path {
	case "/dev/stdout":
		w = os.Stdout
	case "/dev/stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		w = f
	}
	s := &sink{w: bufio.NewWriterSize(w, 64<<10)}
	sinks[path] = s
	return s, nil
}

func (s *sink) write(b []byte) {
	s.mu.Lock()
	s.w.Write(b)
	if !s.pending && s.w.Buffered() > 0 {
		s.pending = true
		time.AfterFunc(FlushInterval, s.flush)
	}
	s.mu.Unlock()
}

func (s *sink) flush() {
	s.mu.Lock()
	s.w.Flush()
	s.pending = false
	s.mu.Unlock()
}

// Flush writes out every buffered line (at shutdown, and for tests that read a log at once).
func Flush() {
	sinksMu.Lock()
	all := make([]*sink, 0, len(sinks))
	for _, s := range sinks {
		all = append(all, s)
	}
	sinksMu.Unlock()
	for _, s := range all {
		s.flush()
	}
}

// Compile builds a Logger from an Envoy AccessLog; field names it for errors.
func Compile(al *accesslogv3.AccessLog, field string) (*Logger, error) {
	l := &Logger{}
	if f := al.GetFilter(); f != nil {
		fn, err := compileFilter(f, field+".filter")
		if err != nil {
			return nil, err
		}
		l.filter = fn
	}
	tc := al.GetTypedConfig()
	var path string
	var lf *corev3.SubstitutionFormatString
	switch tc.GetTypeUrl() {
	case FileType:
		fl := &filev3.FileAccessLog{}
		if err := tc.UnmarshalTo(fl); err != nil {
			return nil, fmt.Errorf("%s.typed_config: %w", field, err)
		}
		if fl.GetPath() == "" {
			return nil, fmt.Errorf("%s.typed_config.path: a file access log needs a path", field)
		}
		path = fl.GetPath()
		switch af := fl.GetAccessLogFormat().(type) {
		case *filev3.FileAccessLog_LogFormat:
			lf = af.LogFormat
		case *filev3.FileAccessLog_Format: //nolint:staticcheck // the deprecated forms are still sent by older control planes
			lf = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: af.Format}}
		case *filev3.FileAccessLog_JsonFormat:
			lf = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: af.JsonFormat}}
		case *filev3.FileAccessLog_TypedJsonFormat:
			lf = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: af.TypedJsonFormat}}
		}
	case StdoutType:
		s := &streamv3.StdoutAccessLog{}
		if err := tc.UnmarshalTo(s); err != nil {
			return nil, fmt.Errorf("%s.typed_config: %w", field, err)
		}
		path, lf = "/dev/stdout", s.GetLogFormat()
	case StderrType:
		s := &streamv3.StderrAccessLog{}
		if err := tc.UnmarshalTo(s); err != nil {
			return nil, fmt.Errorf("%s.typed_config: %w", field, err)
		}
		path, lf = "/dev/stderr", s.GetLogFormat()
	default:
		return nil, fmt.Errorf("%s.typed_config: access logger type %q is not supported (supported: file, stdout, stderr)", field, tc.GetTypeUrl())
	}
	f, err := compileSubstitution(lf, field+".typed_config.log_format")
	if err != nil {
		return nil, err
	}
	l.format = f
	if l.sink, err = sinkFor(path); err != nil {
		return nil, fmt.Errorf("%s.typed_config.path: %w", field, err)
	}
	return l, nil
}

func compileSubstitution(lf *corev3.SubstitutionFormatString, field string) (*Format, error) {
	if lf == nil {
		return ParseText(EnvoyDefault, field)
	}
	if len(lf.GetFormatters()) > 0 {
		return nil, fmt.Errorf("%s.formatters: formatter extensions are not supported", field)
	}
	if lf.GetOmitEmptyValues() || lf.GetContentType() != "" || lf.GetJsonFormatOptions() != nil {
		return nil, fmt.Errorf("%s: omit_empty_values, content_type and json_format_options are not supported", field)
	}
	switch x := lf.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat: //nolint:staticcheck // deprecated but valid
		return ParseText(x.TextFormat, field+".text_format")
	case *corev3.SubstitutionFormatString_TextFormatSource:
		ds := x.TextFormatSource
		if _, ok := ds.GetSpecifier().(*corev3.DataSource_InlineString); !ok {
			return nil, fmt.Errorf("%s.text_format_source: only inline_string is supported", field)
		}
		return ParseText(ds.GetInlineString(), field+".text_format_source.inline_string")
	case *corev3.SubstitutionFormatString_JsonFormat:
		return ParseJSON(x.JsonFormat, field+".json_format")
	case nil:
		return ParseText(EnvoyDefault, field)
	}
	return nil, fmt.Errorf("%s: format %T is not supported", field, lf.GetFormat())
}

func compileFilter(f *accesslogv3.AccessLogFilter, field string) (func(*Entry) bool, error) {
	switch x := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		c, err := comparison(x.StatusCodeFilter.GetComparison(), field+".status_code_filter.comparison")
		if err != nil {
			return nil, err
		}
		return func(e *Entry) bool { return c(int64(e.Status)) }, nil
	case *accesslogv3.AccessLogFilter_DurationFilter:
		c, err := comparison(x.DurationFilter.GetComparison(), field+".duration_filter.comparison")
		if err != nil {
			return nil, err
		}
		return func(e *Entry) bool { return c(e.Duration.Milliseconds()) }, nil
	case *accesslogv3.AccessLogFilter_NotHealthCheckFilter:
		// mesh-proxy runs no health_check HTTP filter, so no request is a health check.
		return func(*Entry) bool { return true }, nil
	case *accesslogv3.AccessLogFilter_ResponseFlagFilter:
		want := x.ResponseFlagFilter.GetFlags()
		return func(e *Entry) bool {
			if e.Flags == "" || e.Flags == "-" {
				return false
			}
			if len(want) == 0 {
				return true
			}
			for _, fl := range strings.Split(e.Flags, ",") {
				for _, w := range want {
					if fl == w {
						return true
					}
				}
			}
			return false
		}, nil
	case *accesslogv3.AccessLogFilter_AndFilter, *accesslogv3.AccessLogFilter_OrFilter:
		var subs []*accesslogv3.AccessLogFilter
		name := "and_filter"
		if a, ok := x.(*accesslogv3.AccessLogFilter_AndFilter); ok {
			subs = a.AndFilter.GetFilters()
		} else {
			subs, name = x.(*accesslogv3.AccessLogFilter_OrFilter).OrFilter.GetFilters(), "or_filter"
		}
		var fns []func(*Entry) bool
		for i, s := range subs {
			fn, err := compileFilter(s, fmt.Sprintf("%s.%s.filters[%d]", field, name, i))
			if err != nil {
				return nil, err
			}
			fns = append(fns, fn)
		}
		and := name == "and_filter"
		return func(e *Entry) bool {
			for _, fn := range fns {
				if fn(e) != and {
					return !and
				}
			}
			return and
		}, nil
	case *accesslogv3.AccessLogFilter_ExtensionFilter:
		tc := x.ExtensionFilter.GetTypedConfig()
		if tc.GetTypeUrl() != CELType {
			return nil, fmt.Errorf("%s.extension_filter: filter type %q is not supported (supported: %s)", field, tc.GetTypeUrl(), CELType)
		}
		ef := &celv3.ExpressionFilter{}
		if err := tc.UnmarshalTo(ef); err != nil {
			return nil, fmt.Errorf("%s.extension_filter: %w", field, err)
		}
		ex, err := celexpr.Parse(ef.GetExpression())
		if err != nil {
			return nil, fmt.Errorf("%s.extension_filter.expression: %w", field, err)
		}
		return func(e *Entry) bool { return ex.Matches(attrs{e}) }, nil
	}
	return nil, fmt.Errorf("%s: access log filter %T is not supported (supported: status_code_filter, duration_filter, not_health_check_filter, response_flag_filter, and_filter, or_filter, extension_filter with CEL)", field, f.GetFilterSpecifier())
}

func comparison(c *accesslogv3.ComparisonFilter, field string) (func(int64) bool, error) {
	if c.GetValue().GetRuntimeKey() != "" {
		return nil, fmt.Errorf("%s.value.runtime_key: runtime overrides of access log filters are not supported", field)
	}
	v := int64(c.GetValue().GetDefaultValue())
	switch c.GetOp() {
	case accesslogv3.ComparisonFilter_EQ:
		return func(x int64) bool { return x == v }, nil
	case accesslogv3.ComparisonFilter_GE:
		return func(x int64) bool { return x >= v }, nil
	case accesslogv3.ComparisonFilter_LE:
		return func(x int64) bool { return x <= v }, nil
	case accesslogv3.ComparisonFilter_NE:
		return func(x int64) bool { return x != v }, nil
	}
	return nil, fmt.Errorf("%s.op: %v is not supported", field, c.GetOp())
}

// attrs are Envoy's attributes (request.*, response.*, connection.*,
// source.*, destination.*, upstream.*, xds.*) over an Entry, for CEL filters.
type attrs struct{ e *Entry }

func (a attrs) Field(name string) (any, bool) {
	switch name {
	case "request":
		return requestAttrs{a.e}, true
	case "response":
		return responseAttrs{a.e}, true
	case "connection":
		return connectionAttrs{a.e}, true
	case "source":
		return addrAttrs(a.e.Remote), true
	case "destination":
		return addrAttrs(a.e.Local), true
	case "upstream":
		return upstreamAttrs{a.e}, true
	case "xds":
		return xdsAttrs{a.e}, true
	}
	return nil, false
}

type requestAttrs struct{ e *Entry }

func (r requestAttrs) Field(name string) (any, bool) {
	e := r.e
	if e.Protocol == "TCP" {
		return nil, false // a TCP connection has no request attributes
	}
	switch name {
	case "path":
		return e.Path, true
	case "url_path":
		p, _, _ := strings.Cut(e.Path, "?")
		return p, true
	case "query":
		_, q, _ := strings.Cut(e.Path, "?")
		return q, true
	case "host":
		return e.Host, true
	case "method":
		return e.Method, true
	case "scheme":
		if e.TLS != nil {
			return "https", true
		}
		return "http", true
	case "protocol":
		return e.Protocol, true
	case "id":
		return e.RequestID, true
	case "useragent":
		return e.UserAgent, true
	case "headers":
		return headerAttrs(e.Header), true
	case "size", "total_size":
		return e.BytesIn, true
	case "time":
		return e.Start.UTC().Format(time.RFC3339Nano), true
	case "duration":
		return e.Duration.Milliseconds(), true // milliseconds: the subset has no duration type
	}
	return nil, false
}

type responseAttrs struct{ e *Entry }

func (r responseAttrs) Field(name string) (any, bool) {
	e := r.e
	switch name {
	case "code":
		if e.Protocol == "TCP" {
			return nil, false
		}
		return int64(e.Status), true
	case "code_details":
		return e.responseDetails(), true
	case "flags":
		// Envoy exposes a bit mask; the subset gives the flags' short names, joined with commas.
		if e.Flags == "-" {
			return "", true
		}
		return e.Flags, true
	case "headers":
		return headerAttrs(e.RespHeader), true
	case "size", "total_size":
		return e.BytesOut, true
	case "grpc_status":
		if v := e.RespHeader.Get("Grpc-Status"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
		return nil, false
	}
	return nil, false
}

type connectionAttrs struct{ e *Entry }

func (c connectionAttrs) Field(name string) (any, bool) {
	e := c.e
	switch name {
	case "mtls":
		return e.TLS != nil && len(e.TLS.PeerCertificates) > 0, true
	case "requested_server_name":
		return e.SNI, true
	case "uri_san_peer_certificate":
		return e.Principal, true
	case "tls_version":
		if e.TLS == nil {
			return nil, false
		}
		v, _ := simpleOps["DOWNSTREAM_TLS_VERSION"](e, &op{}, nil)
		return string(v), true
	}
	return nil, false
}

type addrAttrs string

func (a addrAttrs) Field(name string) (any, bool) {
	h, p, err := net.SplitHostPort(string(a))
	if err != nil {
		return nil, false
	}
	switch name {
	case "address":
		return h, true
	case "port":
		n, err := strconv.ParseInt(p, 10, 64)
		return n, err == nil
	}
	return nil, false
}

type upstreamAttrs struct{ e *Entry }

func (u upstreamAttrs) Field(name string) (any, bool) {
	switch name {
	case "address":
		if u.e.UpstreamHost == "" {
			return nil, false
		}
		h, _, err := net.SplitHostPort(u.e.UpstreamHost)
		if err != nil {
			return u.e.UpstreamHost, true
		}
		return h, true
	case "port":
		return addrAttrs(u.e.UpstreamHost).Field("port")
	case "transport_failure_reason":
		return u.e.UpstreamFailure, true
	}
	return nil, false
}

type xdsAttrs struct{ e *Entry }

func (x xdsAttrs) Field(name string) (any, bool) {
	switch name {
	case "cluster_name":
		return x.e.Cluster, true
	case "route_name":
		return x.e.Route, true
	case "listener_direction":
		return x.e.Direction, true
	}
	return nil, false
}

// headerAttrs indexes headers by lower-case name, as Envoy's attribute maps do.
type headerAttrs http.Header

func (h headerAttrs) Index(key string) (any, bool) {
	vs := http.Header(h).Values(key)
	if len(vs) == 0 {
		return nil, false
	}
	return strings.Join(vs, ","), true
}
