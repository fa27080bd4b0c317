package listener

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
)

// DefaultFormat is Envoy's default access log format.
const DefaultFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

type accessLog struct {
	mu    sync.Mutex
	w     io.Writer
	parts []logPart
}

type logPart struct {
	lit, op, arg string
}

var files sync.Map // path → *os.File, shared by every logger writing there

func compileAccessLog(al *accesslogv3.AccessLog, f string) (*accessLog, error) {
	if al.GetFilter() != nil {
		return nil, fmt.Errorf("%s.filter: access log filters are not supported", f)
	}
	format := DefaultFormat
	a := &accessLog{}
	tc := al.GetTypedConfig()
	switch tc.GetTypeUrl() {
	case "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog":
		fl := &filev3.FileAccessLog{}
		if err := tc.UnmarshalTo(fl); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		switch fl.GetPath() {
		case "/dev/stdout":
			a.w = os.Stdout
		case "/dev/stderr":
			a.w = os.Stderr
		default:
			v, ok := files.Load(fl.GetPath())
			if !ok {
				fh, err := os.OpenFile(fl.GetPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					return nil, fmt.Errorf("%s.path: %w", f, err)
				}
				v, _ = files.LoadOrStore(fl.GetPath(), fh)
			}
			a.w = v.(*os.File)
		}
		if lf := fl.GetLogFormat(); lf != nil {
			tf := lf.GetTextFormatSource()
			if tf == nil || tf.GetInlineString() == "" {
				return nil, fmt.Errorf("%s.log_format: only text_format_source.inline_string is supported", f)
			}
			format = tf.GetInlineString()
		} else if fl.GetFormat() != "" { //nolint:staticcheck // legacy field still sent
			format = fl.GetFormat()
		}
		if fl.GetJsonFormat() != nil || fl.GetTypedJsonFormat() != nil {
			return nil, fmt.Errorf("%s: json_format is not supported; use log_format.text_format_source", f)
		}
	case "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog":
		s := &streamv3.StdoutAccessLog{}
		if err := tc.UnmarshalTo(s); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if s.GetLogFormat() != nil {
			if tf := s.GetLogFormat().GetTextFormatSource(); tf != nil && tf.GetInlineString() != "" {
				format = tf.GetInlineString()
			} else {
				return nil, fmt.Errorf("%s.log_format: only text_format_source.inline_string is supported", f)
			}
		}
		a.w = os.Stdout
	case "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog":
		a.w = os.Stderr
	default:
		return nil, fmt.Errorf("%s: access logger type %q is not supported (supported: file, stdout, stderr)", f, tc.GetTypeUrl())
	}
	parts, err := compileLogFormat(format, f+".log_format")
	if err != nil {
		return nil, err
	}
	a.parts = parts
	return a, nil
}

var logOps = map[string]bool{
	"START_TIME": true, "REQ": true, "RESP": true, "PROTOCOL": true, "RESPONSE_CODE": true, "RESPONSE_FLAGS": true,
	"BYTES_RECEIVED": true, "BYTES_SENT": true, "DURATION": true, "UPSTREAM_HOST": true, "UPSTREAM_CLUSTER": true,
	"DOWNSTREAM_REMOTE_ADDRESS": true, "ROUTE_NAME": true, "DOWNSTREAM_PEER_URI_SAN": true,
}

func compileLogFormat(s, f string) ([]logPart, error) {
	var parts []logPart
	for s != "" {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			parts = append(parts, logPart{lit: s})
			break
		}
		if i > 0 {
			parts = append(parts, logPart{lit: s[:i]})
		}
		s = s[i+1:]
		j := strings.IndexByte(s, '%')
		if j < 0 {
			return nil, fmt.Errorf("%s: unterminated command %q", f, s)
		}
		op, arg := s[:j], ""
		if k := strings.IndexByte(op, '('); k >= 0 {
			op, arg = op[:k], strings.TrimSuffix(op[k+1:], ")")
			if c := strings.LastIndexByte(arg, ')'); c >= 0 {
				arg = arg[:c]
			}
		}
		if op == "" {
			parts = append(parts, logPart{lit: "%"})
		} else if !logOps[op] {
			return nil, fmt.Errorf("%s: command %%%s%% is not supported", f, op)
		} else {
			parts = append(parts, logPart{op: op, arg: arg})
		}
		s = s[j+1:]
	}
	return parts, nil
}

func (a *accessLog) write(r *Request) {
	var b strings.Builder
	for _, p := range a.parts {
		if p.op == "" {
			b.WriteString(p.lit)
			continue
		}
		v := ""
		switch p.op {
		case "START_TIME":
			v = r.Start.UTC().Format("2006-01-02T15:04:05.000Z")
		case "REQ":
			v = reqHeader(r, p.arg)
		case "PROTOCOL":
			v = r.Protocol
		case "RESPONSE_CODE":
			v = strconv.Itoa(r.Status)
		case "RESPONSE_FLAGS":
			v = r.Flags
		case "BYTES_RECEIVED":
			v = strconv.FormatInt(r.BytesIn, 10)
		case "BYTES_SENT":
			v = strconv.FormatInt(r.BytesOut, 10)
		case "DURATION":
			v = strconv.FormatInt(r.Duration.Milliseconds(), 10)
		case "UPSTREAM_HOST":
			v = r.UpstreamHost
		case "UPSTREAM_CLUSTER":
			v = r.Cluster
		case "DOWNSTREAM_REMOTE_ADDRESS":
			v = r.Remote
		case "ROUTE_NAME":
			v = r.Route
		case "DOWNSTREAM_PEER_URI_SAN":
			v = r.Principal
		}
		if v == "" {
			v = "-"
		}
		b.WriteString(v)
	}
	a.mu.Lock()
	io.WriteString(a.w, b.String())
	a.mu.Unlock()
}

func reqHeader(r *Request, arg string) string {
	for _, alt := range strings.Split(arg, "?") {
		switch strings.ToUpper(alt) {
		case ":METHOD":
			return r.Method
		case ":PATH", "PATH":
			return r.Path
		case ":AUTHORITY":
			return r.Host
		}
		if r.Header != nil {
			if v := r.Header.Get(alt); v != "" {
				return v
			}
		}
	}
	return ""
}
