package accesslog

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// EnvoyDefault is Envoy's default text format, used when a logger gives none.
const EnvoyDefault = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// IstioDefault is Istio's default text format (meshConfig accessLogEncoding TEXT with no accessLogFormat).
const IstioDefault = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"

// IstioDefaultJSON is Istio's default JSON format (accessLogEncoding JSON with no accessLogFormat): key → format.
var IstioDefaultJSON = map[string]string{
	"start_time": "%START_TIME%", "route_name": "%ROUTE_NAME%", "method": "%REQ(:METHOD)%",
	"path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%",
	"response_flags": "%RESPONSE_FLAGS%", "response_code_details": "%RESPONSE_CODE_DETAILS%",
	"connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%", "bytes_received": "%BYTES_RECEIVED%",
	"bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%", "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
	"x_forwarded_for": "%REQ(X-FORWARDED-FOR)%", "user_agent": "%REQ(USER-AGENT)%", "request_id": "%REQ(X-REQUEST-ID)%",
	"authority": "%REQ(:AUTHORITY)%", "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER%",
	"upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%", "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
	"downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%", "requested_server_name": "%REQUESTED_SERVER_NAME%",
	"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}

// kind is what an operator's value is in a JSON log: a string, a number, or absent (null; "-" in text).
type kind uint8

const (
	kNull kind = iota
	kString
	kNumber
	kRaw // already JSON (metadata objects)
)

// op is one compiled command operator.
type op struct {
	eval   func(e *Entry, o *op, b []byte) ([]byte, kind)
	args   []string // header alternatives, metadata path, environment name
	maxLen int      // :N truncation (0: none)
	clock  []clockPart
	env    string // ENVIRONMENT's value, read once
}

// segment is literal text or an operator.
type segment struct {
	lit string
	op  *op
}

// Format is a compiled access log format: a text template, or a JSON object of templates.
type Format struct {
	text []segment
	json []jsonField // sorted by key; nil for text
}

type jsonField struct {
	key    string
	text   []segment // a value template
	nested *Format   // a nested object
	lit    string    // a literal non-string value, already JSON (numbers, bools, null)
	isLit  bool
}

// ParseText compiles a text format string; field names the config location for errors.
func ParseText(s, field string) (*Format, error) {
	segs, err := parseTemplate(s, field)
	if err != nil {
		return nil, err
	}
	return &Format{text: segs}, nil
}

// ParseJSON compiles a JSON format (Envoy's json_format): string values are
// templates, nested objects nest, other values are written as given.
func ParseJSON(st *structpb.Struct, field string) (*Format, error) {
	f := &Format{json: []jsonField{}}
	keys := make([]string, 0, len(st.GetFields()))
	for k := range st.GetFields() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := st.GetFields()[k]
		jf := jsonField{key: k}
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			segs, err := parseTemplate(x.StringValue, field+"."+k)
			if err != nil {
				return nil, err
			}
			jf.text = segs
		case *structpb.Value_StructValue:
			n, err := ParseJSON(x.StructValue, field+"."+k)
			if err != nil {
				return nil, err
			}
			jf.nested = n
		case *structpb.Value_ListValue:
			return nil, fmt.Errorf("%s.%s: lists are not supported in a JSON log format", field, k)
		default:
			b, err := json.Marshal(v.AsInterface())
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", field, k, err)
			}
			jf.lit, jf.isLit = string(b), true
		}
		f.json = append(f.json, jf)
	}
	return f, nil
}

// ParseJSONMap compiles a flat key → template JSON format.
func ParseJSONMap(m map[string]string, field string) (*Format, error) {
	fs := map[string]any{}
	for k, v := range m {
		fs[k] = v
	}
	st, err := structpb.NewStruct(fs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return ParseJSON(st, field)
}

// Append writes e in the format to b (one line, ending in a newline for JSON).
func (f *Format) Append(b []byte, e *Entry) []byte {
	if f.json == nil {
		for i := range f.text {
			s := &f.text[i]
			if s.op == nil {
				b = append(b, s.lit...)
				continue
			}
			n := len(b)
			var k kind
			b, k = s.op.eval(e, s.op, b)
			if k == kNull || len(b) == n {
				b = append(b[:n], '-')
			}
		}
		return b
	}
	b = f.appendJSON(b, e)
	return append(b, '\n')
}

func (f *Format) appendJSON(b []byte, e *Entry) []byte {
	b = append(b, '{')
	for i := range f.json {
		jf := &f.json[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, jf.key)
		b = append(b, ':')
		switch {
		case jf.isLit:
			b = append(b, jf.lit...)
		case jf.nested != nil:
			b = jf.nested.appendJSON(b, e)
		case len(jf.text) == 1 && jf.text[0].op != nil:
			// A value that is one operator keeps its type: numbers stay numbers, absent is null.
			var tmp [128]byte
			v, k := jf.text[0].op.eval(e, jf.text[0].op, tmp[:0])
			switch {
			case k == kNull || len(v) == 0:
				b = append(b, "null"...)
			case k == kNumber || k == kRaw:
				b = append(b, v...)
			default:
				b = appendJSONString(b, string(v))
			}
		default:
			var tmp [256]byte
			v := tmp[:0]
			for _, s := range jf.text {
				if s.op == nil {
					v = append(v, s.lit...)
					continue
				}
				n := len(v)
				var k kind
				v, k = s.op.eval(e, s.op, v)
				if k == kNull || len(v) == n {
					v = append(v[:n], '-')
				}
			}
			b = appendJSONString(b, string(v))
		}
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// parseTemplate splits a format string into literals and operators.
func parseTemplate(s, field string) ([]segment, error) {
	var segs []segment
	pos := 0
	for pos < len(s) {
		i := strings.IndexByte(s[pos:], '%')
		if i < 0 {
			segs = appendLit(segs, s[pos:])
			break
		}
		segs = appendLit(segs, s[pos:pos+i])
		start := pos + i
		pos = start + 1
		if pos < len(s) && s[pos] == '%' {
			segs = appendLit(segs, "%")
			pos++
			continue
		}
		j := pos
		for j < len(s) && (s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9' || s[j] == '_') {
			j++
		}
		name := s[pos:j]
		if name == "" {
			return nil, fmt.Errorf("%s: position %d: '%%' starts no command operator (write %%%% for a literal %%)", field, start)
		}
		arg, hasArg := "", false
		if j < len(s) && s[j] == '(' {
			k := strings.IndexByte(s[j:], ')')
			if k < 0 {
				return nil, fmt.Errorf("%s: position %d: %%%s(... has no closing ')'", field, start, name)
			}
			arg, hasArg = s[j+1:j+k], true
			j += k + 1
		}
		maxLen := 0
		if j < len(s) && s[j] == ':' {
			k := j + 1
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			if k == j+1 {
				return nil, fmt.Errorf("%s: position %d: %%%s: ':' must be followed by a length", field, start, name)
			}
			n, err := strconv.Atoi(s[j+1 : k])
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%s: position %d: %%%s: length %q must be a positive number", field, start, name, s[j+1:k])
			}
			maxLen, j = n, k
		}
		if j >= len(s) || s[j] != '%' {
			return nil, fmt.Errorf("%s: position %d: command operator %%%s is not closed by '%%'", field, start, name)
		}
		o, err := compileOp(name, arg, hasArg, maxLen)
		if err != nil {
			return nil, fmt.Errorf("%s: position %d: %w", field, start, err)
		}
		segs = append(segs, segment{op: o})
		pos = j + 1
	}
	return segs, nil
}

func appendLit(segs []segment, s string) []segment {
	if s == "" {
		return segs
	}
	if n := len(segs); n > 0 && segs[n-1].op == nil {
		segs[n-1].lit += s
		return segs
	}
	return append(segs, segment{lit: s})
}

type evalFunc = func(e *Entry, o *op, b []byte) ([]byte, kind)

func str(f func(e *Entry) string) evalFunc {
	return func(e *Entry, o *op, b []byte) ([]byte, kind) {
		v := f(e)
		if v == "" {
			return b, kNull
		}
		if o.maxLen > 0 && len(v) > o.maxLen {
			v = v[:o.maxLen]
		}
		return append(b, v...), kString
	}
}

func num(f func(e *Entry) int64) evalFunc {
	return func(e *Entry, o *op, b []byte) ([]byte, kind) {
		return strconv.AppendInt(b, f(e), 10), kNumber
	}
}

func tlsStr(f func(cs *tls.ConnectionState) string) evalFunc {
	return str(func(e *Entry) string {
		if e.TLS == nil {
			return ""
		}
		return f(e.TLS)
	})
}

func withoutPort(a string) string {
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

// simpleOps are the operators that take no argument.
var simpleOps = map[string]evalFunc{
	"PROTOCOL": str(func(e *Entry) string {
		if e.Protocol == "TCP" {
			return ""
		}
		return e.Protocol
	}),
	"RESPONSE_CODE":                                 num(func(e *Entry) int64 { return int64(e.Status) }),
	"RESPONSE_FLAGS":                                str(func(e *Entry) string { return e.Flags }),
	"RESPONSE_CODE_DETAILS":                         str(func(e *Entry) string { return e.responseDetails() }),
	"CONNECTION_TERMINATION_DETAILS":                str(func(*Entry) string { return "" }),
	"BYTES_RECEIVED":                                num(func(e *Entry) int64 { return e.BytesIn }),
	"BYTES_SENT":                                    num(func(e *Entry) int64 { return e.BytesOut }),
	"DURATION":                                      num(func(e *Entry) int64 { return e.Duration.Milliseconds() }),
	"UPSTREAM_HOST":                                 str(func(e *Entry) string { return e.UpstreamHost }),
	"UPSTREAM_REMOTE_ADDRESS":                       str(func(e *Entry) string { return e.UpstreamHost }),
	"UPSTREAM_CLUSTER":                              str(func(e *Entry) string { return e.Cluster }),
	"UPSTREAM_CLUSTER_RAW":                          str(func(e *Entry) string { return e.Cluster }),
	"UPSTREAM_LOCAL_ADDRESS":                        str(func(e *Entry) string { return e.UpstreamLocal }),
	"UPSTREAM_TRANSPORT_FAILURE_REASON":             str(func(e *Entry) string { return e.UpstreamFailure }),
	"DOWNSTREAM_REMOTE_ADDRESS":                     str(func(e *Entry) string { return e.Remote }),
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":        str(func(e *Entry) string { return withoutPort(e.Remote) }),
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS":              str(func(e *Entry) string { return e.Remote }),
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": str(func(e *Entry) string { return withoutPort(e.Remote) }),
	"DOWNSTREAM_LOCAL_ADDRESS":                      str(func(e *Entry) string { return e.Local }),
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":         str(func(e *Entry) string { return withoutPort(e.Local) }),
	"DOWNSTREAM_LOCAL_PORT": str(func(e *Entry) string {
		if _, p, err := net.SplitHostPort(e.Local); err == nil {
			return p
		}
		return ""
	}),
	"REQUESTED_SERVER_NAME":   str(func(e *Entry) string { return e.SNI }),
	"ROUTE_NAME":              str(func(e *Entry) string { return e.Route }),
	"DOWNSTREAM_PEER_URI_SAN": str(func(e *Entry) string { return e.Principal }),
	"DOWNSTREAM_PEER_SUBJECT": tlsStr(func(cs *tls.ConnectionState) string {
		if len(cs.PeerCertificates) == 0 {
			return ""
		}
		return cs.PeerCertificates[0].Subject.String()
	}),
	"DOWNSTREAM_PEER_ISSUER": tlsStr(func(cs *tls.ConnectionState) string {
		if len(cs.PeerCertificates) == 0 {
			return ""
		}
		return cs.PeerCertificates[0].Issuer.String()
	}),
	"DOWNSTREAM_PEER_SERIAL": tlsStr(func(cs *tls.ConnectionState) string {
		if len(cs.PeerCertificates) == 0 {
			return ""
		}
		return strings.ToLower(cs.PeerCertificates[0].SerialNumber.Text(16))
	}),
	"DOWNSTREAM_PEER_FINGERPRINT_256": tlsStr(func(cs *tls.ConnectionState) string {
		if len(cs.PeerCertificates) == 0 {
			return ""
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		return hex.EncodeToString(sum[:])
	}),
	"DOWNSTREAM_PEER_DNS_SAN": tlsStr(func(cs *tls.ConnectionState) string {
		if len(cs.PeerCertificates) == 0 {
			return ""
		}
		return strings.Join(cs.PeerCertificates[0].DNSNames, ",")
	}),
	"DOWNSTREAM_TLS_VERSION": tlsStr(func(cs *tls.ConnectionState) string {
		switch cs.Version {
		case tls.VersionTLS12:
			return "TLSv1.2"
		case tls.VersionTLS13:
			return "TLSv1.3"
		}
		return tls.VersionName(cs.Version)
	}),
	"DOWNSTREAM_TLS_CIPHER": tlsStr(func(cs *tls.ConnectionState) string { return tls.CipherSuiteName(cs.CipherSuite) }),
	"HOSTNAME":              str(func(*Entry) string { return hostname }),
	"TRACE_ID":              str(func(e *Entry) string { return e.TraceID }),
}

var hostname, _ = os.Hostname()

func compileOp(name, arg string, hasArg bool, maxLen int) (*op, error) {
	o := &op{maxLen: maxLen}
	if f, ok := simpleOps[name]; ok {
		if hasArg {
			return nil, fmt.Errorf("%%%s%% takes no argument", name)
		}
		o.eval = f
		return o, nil
	}
	switch name {
	case "START_TIME":
		layout := "%Y-%m-%dT%H:%M:%E3SZ"
		if hasArg && arg != "" {
			layout = arg
		}
		c, err := compileClock(layout)
		if err != nil {
			return nil, fmt.Errorf("%%START_TIME(%s)%%: %w", arg, err)
		}
		o.clock = c
		o.eval = func(e *Entry, o *op, b []byte) ([]byte, kind) { return appendClock(b, o.clock, e.Start.UTC()), kString }
	case "REQ", "REQUEST_HEADER", "RESP", "RESPONSE_HEADER":
		if !hasArg || arg == "" {
			return nil, fmt.Errorf("%%%s(header)%% needs a header name", name)
		}
		alts := strings.Split(arg, "?")
		if len(alts) > 2 {
			return nil, fmt.Errorf("%%%s(%s)%%: at most one alternative header (A?B)", name, arg)
		}
		for _, a := range alts {
			if a == "" {
				return nil, fmt.Errorf("%%%s(%s)%%: empty header name", name, arg)
			}
		}
		// Canonical once here, so a request's lookups are plain map reads.
		o.args = headerKeys(alts)
		if name == "REQ" || name == "REQUEST_HEADER" {
			o.eval = func(e *Entry, o *op, b []byte) ([]byte, kind) { return appendTrunc(b, o, reqHeader(e, o.args)) }
		} else {
			o.eval = func(e *Entry, o *op, b []byte) ([]byte, kind) { return appendTrunc(b, o, respHeader(e, o.args)) }
		}
	case "DYNAMIC_METADATA", "FILTER_STATE":
		if !hasArg || arg == "" {
			return nil, fmt.Errorf("%%%s(namespace[:key...])%% needs a namespace", name)
		}
		path := strings.Split(arg, ":")
		if name == "FILTER_STATE" {
			// FILTER_STATE(KEY[:PLAIN|:TYPED]): the filter state key is the whole name.
			if n := len(path); n > 1 && (path[n-1] == "PLAIN" || path[n-1] == "TYPED") {
				path = path[:n-1]
			}
			path = []string{strings.Join(path, ":")}
		}
		o.args = path
		o.eval = evalMetadata
	case "ENVIRONMENT":
		if !hasArg || arg == "" {
			return nil, fmt.Errorf("%%ENVIRONMENT(NAME)%% needs a variable name")
		}
		o.env = os.Getenv(arg)
		o.eval = func(e *Entry, o *op, b []byte) ([]byte, kind) { return appendTrunc(b, o, o.env) }
	default:
		return nil, fmt.Errorf("command operator %%%s%% is not supported (supported: %s)", name, supportedOps())
	}
	return o, nil
}

func supportedOps() string {
	names := []string{"START_TIME", "REQ", "REQUEST_HEADER", "RESP", "RESPONSE_HEADER", "DYNAMIC_METADATA", "FILTER_STATE", "ENVIRONMENT"}
	for n := range simpleOps {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func appendTrunc(b []byte, o *op, v string) ([]byte, kind) {
	if v == "" {
		return b, kNull
	}
	if o.maxLen > 0 && len(v) > o.maxLen {
		v = v[:o.maxLen]
	}
	return append(b, v...), kString
}

// headerKeys are header names as the header maps hold them: pseudo
// headers (:path) lower case, the others canonical.
func headerKeys(alts []string) []string {
	out := make([]string, len(alts))
	for i, a := range alts {
		if strings.HasPrefix(a, ":") {
			out[i] = strings.ToLower(a)
		} else {
			out[i] = textproto.CanonicalMIMEHeaderKey(a)
		}
	}
	return out
}

// firstValue is http.Header.Get for a key already canonical.
func firstValue(h map[string][]string, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func reqHeader(e *Entry, alts []string) string {
	for _, a := range alts {
		switch a {
		case ":method":
			if e.Method != "" {
				return e.Method
			}
			continue
		case ":path":
			if e.Path != "" {
				return e.Path
			}
			continue
		case ":authority", "Host":
			if e.Host != "" {
				return e.Host
			}
			continue
		case ":scheme":
			if e.Protocol == "TCP" || e.Method == "" {
				continue
			}
			if e.TLS != nil {
				return "https"
			}
			return "http"
		}
		if v := firstValue(e.Header, a); v != "" {
			return v
		}
	}
	return ""
}

func respHeader(e *Entry, alts []string) string {
	for _, a := range alts {
		if a == ":status" && e.Status != 0 {
			return strconv.Itoa(e.Status)
		}
		if v := firstValue(e.RespHeader, a); v != "" {
			return v
		}
	}
	return ""
}

func evalMetadata(e *Entry, o *op, b []byte) ([]byte, kind) {
	if e.Meta == nil {
		return b, kNull
	}
	v := e.Meta.Get(o.args[0])
	for _, k := range o.args[1:] {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case map[string]string:
			s, ok := m[k]
			if !ok {
				return b, kNull
			}
			v = s
		case interface{ Field(string) (any, bool) }:
			v, _ = m.Field(k)
		default:
			return b, kNull
		}
	}
	switch x := v.(type) {
	case nil:
		return b, kNull
	case string:
		return appendTrunc(b, o, x)
	case bool:
		return strconv.AppendBool(b, x), kRaw
	case int:
		return strconv.AppendInt(b, int64(x), 10), kNumber
	case int64:
		return strconv.AppendInt(b, x, 10), kNumber
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64), kNumber
	case fmt.Stringer:
		return appendTrunc(b, o, x.String())
	}
	js, err := json.Marshal(v)
	if err != nil {
		return b, kNull
	}
	return append(b, js...), kRaw
}

// clockPart is one piece of a START_TIME layout: literal text or a strftime conversion.
type clockPart struct {
	lit  string
	conv byte // 'Y', 'm', ... ; 'E' with digits for %E<n>S, 'f' with digits for %<n>f
	n    int
}

// compileClock compiles the strftime subset START_TIME accepts.
func compileClock(s string) ([]clockPart, error) {
	var out []clockPart
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if n := len(out); n > 0 && out[n-1].conv == 0 {
				out[n-1].lit += string(c)
			} else {
				out = append(out, clockPart{lit: string(c)})
			}
			continue
		}
		i++
		if i >= len(s) {
			return nil, fmt.Errorf("layout ends in '%%'")
		}
		switch d := s[i]; {
		case strings.IndexByte("YmdHMSyjbBaAzZsFTe%", d) >= 0:
			if d == '%' {
				out = append(out, clockPart{lit: "%"})
				continue
			}
			out = append(out, clockPart{conv: d})
		case d == 'E' || d >= '1' && d <= '9':
			j := i
			if d == 'E' {
				j++
			}
			k := j
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			n, _ := strconv.Atoi(s[j:k])
			if k >= len(s) || k == j || n < 1 || n > 9 {
				return nil, fmt.Errorf("%%%s: want %%E<1-9>S or %%<1-9>f", s[i:min(k+1, len(s))])
			}
			switch {
			case d == 'E' && s[k] == 'S':
				out = append(out, clockPart{conv: 'E', n: n})
			case d != 'E' && s[k] == 'f':
				out = append(out, clockPart{conv: 'f', n: n})
			default:
				return nil, fmt.Errorf("%%%s: want %%E<1-9>S or %%<1-9>f", s[i:k+1])
			}
			i = k
		default:
			return nil, fmt.Errorf("%%%c is not a supported time conversion (supported: %%Y %%m %%d %%H %%M %%S %%y %%j %%b %%B %%a %%A %%z %%Z %%s %%F %%T %%e %%E<n>S %%<n>f)", d)
		}
	}
	return out, nil
}

func appendClock(b []byte, parts []clockPart, t time.Time) []byte {
	for _, p := range parts {
		switch p.conv {
		case 0:
			b = append(b, p.lit...)
		case 'Y':
			b = t.AppendFormat(b, "2006")
		case 'm':
			b = t.AppendFormat(b, "01")
		case 'd':
			b = t.AppendFormat(b, "02")
		case 'e':
			b = t.AppendFormat(b, "_2")
		case 'H':
			b = t.AppendFormat(b, "15")
		case 'M':
			b = t.AppendFormat(b, "04")
		case 'S':
			b = t.AppendFormat(b, "05")
		case 'y':
			b = t.AppendFormat(b, "06")
		case 'j':
			b = t.AppendFormat(b, "002")
		case 'b':
			b = t.AppendFormat(b, "Jan")
		case 'B':
			b = t.AppendFormat(b, "January")
		case 'a':
			b = t.AppendFormat(b, "Mon")
		case 'A':
			b = t.AppendFormat(b, "Monday")
		case 'z':
			b = t.AppendFormat(b, "-0700")
		case 'Z':
			b = t.AppendFormat(b, "MST")
		case 's':
			b = strconv.AppendInt(b, t.Unix(), 10)
		case 'F':
			b = t.AppendFormat(b, "2006-01-02")
		case 'T':
			b = t.AppendFormat(b, "15:04:05")
		case 'E':
			b = t.AppendFormat(b, "05")
			b = append(b, '.')
			b = appendFraction(b, t, p.n)
		case 'f':
			b = appendFraction(b, t, p.n)
		}
	}
	return b
}

func appendFraction(b []byte, t time.Time, n int) []byte {
	ns := t.Nanosecond()
	for i := 9; i > n; i-- {
		ns /= 10
	}
	s := strconv.Itoa(ns)
	for i := len(s); i < n; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
