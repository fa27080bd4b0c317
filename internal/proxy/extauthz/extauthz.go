// Package extauthz is mesh-proxy's ext_authz HTTP filter
// (envoy.filters.http.ext_authz): before a request goes on, it asks an
// authorization service, over Envoy's HTTP protocol or its gRPC Check
// (envoy.service.auth.v3), whether the request may pass. Istio's CUSTOM
// AuthorizationPolicies run through it. A service that cannot be asked
// (down, slow, answering 5xx) refuses the request unless
// failure_mode_allow says otherwise: the filter fails closed.
package extauthz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/match"
	"mesh.dev/mesh/internal/proxy/protofields"
	"mesh.dev/mesh/internal/proxy/rbac"
)

// TypeURL is the filter's config type.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"

// Factory registers the filter.
func Factory() httpfilter.Factory {
	return httpfilter.Factory{
		Name:        "envoy.filters.http.ext_authz",
		ConfigTypes: []string{TypeURL},
		New: func(c httpfilter.Config) (httpfilter.Filter, error) {
			cfg := &extauthzv3.ExtAuthz{}
			if err := c.Any.UnmarshalTo(cfg); err != nil {
				return nil, fmt.Errorf("%s: %w", c.Field, err)
			}
			f, err := compile(cfg, c.Field, c.Env)
			if err != nil {
				return nil, err
			}
			if f.body != nil {
				return &bodyFilter{f}, nil
			}
			return f, nil
		},
	}
}

type filter struct {
	cluster   func(string) *cluster.Cluster
	name      string // the cluster the service is reached through
	authority string // gRPC :authority
	useGRPC   bool
	timeout   time.Duration

	pathPrefix     string
	allowedHeaders *headerList // request headers sent to the service (HTTP: besides Host, Method, Path, Content-Length, Authorization)
	headersToAdd   [][2]string
	toUpstream     *headerList // answer headers copied onto the request when allowed
	toClient       *headerList // answer headers sent to the client when denied (nil: all but Host)
	toClientOK     *headerList // answer headers added to the response when allowed (nil: none)

	failOpen      bool
	statusOnError int
	enabled       func(*httpfilter.Metadata) bool // filter_enabled_metadata; nil: every request
	body          *bodySettings

	grpcMu   sync.Mutex // held to replace grpcConn
	grpcConn atomic.Pointer[grpc.ClientConn]

	ok, denied, errored, failOpened *atomic.Int64
}

type bodySettings struct {
	max     int
	partial bool
	asBytes bool
}

// bodyFilter is the filter when with_request_body is set: the check waits for the buffered body.
type bodyFilter struct{ *filter }

func compile(c *extauthzv3.ExtAuthz, f string, env httpfilter.Env) (*filter, error) {
	if err := protofields.Check(c, f, "http_service", "grpc_service", "failure_mode_allow", "status_on_error",
		"filter_enabled_metadata", "with_request_body", "transport_api_version", "allowed_headers"); err != nil {
		return nil, err
	}
	if v := c.GetTransportApiVersion(); v != corev3.ApiVersion_V3 && v != corev3.ApiVersion_AUTO {
		return nil, fmt.Errorf("%s.transport_api_version: only V3 is supported", f)
	}
	x := &filter{failOpen: c.GetFailureModeAllow(), statusOnError: http.StatusForbidden,
		ok:         env.Counter(env.StatPrefix + "ext_authz.ok"),
		denied:     env.Counter(env.StatPrefix + "ext_authz.denied"),
		errored:    env.Counter(env.StatPrefix + "ext_authz.error"),
		failOpened: env.Counter(env.StatPrefix + "ext_authz.failure_mode_allowed"),
	}
	if x.cluster = env.Cluster; x.cluster == nil {
		x.cluster = func(string) *cluster.Cluster { return nil }
	}
	if s := c.GetStatusOnError(); s != nil && s.GetCode() != 0 {
		x.statusOnError = int(s.GetCode())
	}
	var err error
	if m := c.GetFilterEnabledMetadata(); m != nil {
		if x.enabled, err = rbac.MetadataMatcher(m, f+".filter_enabled_metadata"); err != nil {
			return nil, err
		}
	}
	if b := c.GetWithRequestBody(); b != nil {
		if err := protofields.Check(b, f+".with_request_body", "max_request_bytes", "allow_partial_message", "pack_as_bytes"); err != nil {
			return nil, err
		}
		x.body = &bodySettings{max: int(b.GetMaxRequestBytes()), partial: b.GetAllowPartialMessage(), asBytes: b.GetPackAsBytes()}
	}
	if x.allowedHeaders, err = compileList(c.GetAllowedHeaders(), f+".allowed_headers"); err != nil {
		return nil, err
	}
	switch s := c.GetServices().(type) {
	case *extauthzv3.ExtAuthz_HttpService:
		hs, hf := s.HttpService, f+".http_service"
		if err := protofields.Check(hs, hf, "server_uri", "path_prefix", "authorization_request", "authorization_response"); err != nil {
			return nil, err
		}
		su := hs.GetServerUri()
		if err := protofields.Check(su, hf+".server_uri", "uri", "cluster", "timeout"); err != nil {
			return nil, err
		}
		if x.name = su.GetCluster(); x.name == "" {
			return nil, fmt.Errorf("%s.server_uri.cluster: required", hf)
		}
		x.timeout = su.GetTimeout().AsDuration()
		x.pathPrefix = hs.GetPathPrefix()
		if ar := hs.GetAuthorizationRequest(); ar != nil {
			if err := protofields.Check(ar, hf+".authorization_request", "allowed_headers", "headers_to_add"); err != nil {
				return nil, err
			}
			if ar.GetAllowedHeaders() != nil { //nolint:staticcheck // Istio's older field, still sent
				if x.allowedHeaders, err = compileList(ar.GetAllowedHeaders(), hf+".authorization_request.allowed_headers"); err != nil { //nolint:staticcheck
					return nil, err
				}
			}
			for _, h := range ar.GetHeadersToAdd() {
				x.headersToAdd = append(x.headersToAdd, [2]string{h.GetKey(), h.GetValue()})
			}
		}
		if ar := hs.GetAuthorizationResponse(); ar != nil {
			af := hf + ".authorization_response"
			if err := protofields.Check(ar, af, "allowed_upstream_headers", "allowed_client_headers", "allowed_client_headers_on_success"); err != nil {
				return nil, err
			}
			if x.toUpstream, err = compileList(ar.GetAllowedUpstreamHeaders(), af+".allowed_upstream_headers"); err != nil {
				return nil, err
			}
			if x.toClient, err = compileList(ar.GetAllowedClientHeaders(), af+".allowed_client_headers"); err != nil {
				return nil, err
			}
			if x.toClientOK, err = compileList(ar.GetAllowedClientHeadersOnSuccess(), af+".allowed_client_headers_on_success"); err != nil {
				return nil, err
			}
		}
	case *extauthzv3.ExtAuthz_GrpcService:
		gs, gf := s.GrpcService, f+".grpc_service"
		if err := protofields.Check(gs, gf, "envoy_grpc", "timeout"); err != nil {
			return nil, err
		}
		eg := gs.GetEnvoyGrpc()
		if eg == nil {
			return nil, fmt.Errorf("%s: only envoy_grpc is supported (google_grpc is not)", gf)
		}
		if err := protofields.Check(eg, gf+".envoy_grpc", "cluster_name", "authority"); err != nil {
			return nil, err
		}
		if x.name = eg.GetClusterName(); x.name == "" {
			return nil, fmt.Errorf("%s.envoy_grpc.cluster_name: required", gf)
		}
		x.useGRPC, x.authority = true, eg.GetAuthority()
		if x.authority == "" {
			x.authority = x.name
		}
		x.timeout = 200 * time.Millisecond // Envoy's default for the gRPC service
		if gs.GetTimeout() != nil {
			x.timeout = gs.GetTimeout().AsDuration()
		}
	default:
		return nil, fmt.Errorf("%s: one of http_service or grpc_service is required", f)
	}
	if x.timeout <= 0 {
		x.timeout = 200 * time.Millisecond
	}
	return x, nil
}

// headerList is a compiled ListStringMatcher over lower-case header names.
type headerList struct{ ms []*match.String }

func compileList(l *matcherv3.ListStringMatcher, f string) (*headerList, error) {
	if l == nil {
		return nil, nil
	}
	hl := &headerList{}
	for i, p := range l.GetPatterns() {
		m, err := match.CompileString(p, fmt.Sprintf("%s.patterns[%d]", f, i))
		if err != nil {
			return nil, err
		}
		hl.ms = append(hl.ms, m)
	}
	return hl, nil
}

func (l *headerList) has(name string) bool {
	if l == nil {
		return false
	}
	name = strings.ToLower(name)
	for _, m := range l.ms {
		if m.Match(name) {
			return true
		}
	}
	return false
}

func (f *filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	if f.enabled != nil && !f.enabled(s.Meta()) {
		return httpfilter.Continue
	}
	return f.check(s, nil)
}

// DecodeBody is the check when the body is sent to the service too.
func (f *bodyFilter) DecodeBody(s *httpfilter.Stream, body []byte) httpfilter.Status {
	if f.enabled != nil && !f.enabled(s.Meta()) {
		return httpfilter.Continue
	}
	if f.body.max > 0 && len(body) > f.body.max {
		if !f.body.partial {
			return s.SendLocalReply(http.StatusRequestEntityTooLarge, nil, "", "")
		}
		body = body[:f.body.max]
	}
	return f.check(s, body)
}

// DecodeHeaders defers the check to DecodeBody.
func (f *bodyFilter) DecodeHeaders(*httpfilter.Stream) httpfilter.Status { return httpfilter.Continue }

// decision is the service's answer.
type decision struct {
	allowed     bool
	status      int
	body        string
	toClient    http.Header // denied: headers for the client
	toUpstream  [][2]string // allowed: headers set on the request
	appendUp    [][2]string // allowed: headers appended to the request
	removeUp    []string    // allowed: headers removed from the request
	toClientAdd [][2]string // allowed: headers added to the response
}

var errNoCluster = errors.New("ext_authz: the authorization service's cluster is unknown")

func (f *filter) check(s *httpfilter.Stream, body []byte) httpfilter.Status {
	ctx, cancel := context.WithTimeout(s.Context(), f.timeout)
	defer cancel()
	var d decision
	var err error
	if f.useGRPC {
		d, err = f.checkGRPC(ctx, s, body)
	} else {
		d, err = f.checkHTTP(ctx, s, body)
	}
	if err != nil {
		f.errored.Add(1)
		if f.failOpen {
			f.failOpened.Add(1)
			return httpfilter.Continue
		}
		return s.SendLocalReply(f.statusOnError, nil, "", "UAEX")
	}
	if !d.allowed {
		f.denied.Add(1)
		if d.status == 0 {
			d.status = http.StatusForbidden
		}
		return s.SendLocalReply(d.status, d.toClient, d.body, "UAEX")
	}
	f.ok.Add(1)
	h := s.Request.Header
	for _, kv := range d.toUpstream {
		h.Set(kv[0], kv[1])
	}
	for _, kv := range d.appendUp {
		h.Add(kv[0], kv[1])
	}
	for _, k := range d.removeUp {
		h.Del(k)
	}
	for _, kv := range d.toClientAdd {
		s.AddResponseHeader(kv[0], kv[1])
	}
	return httpfilter.Continue
}

// alwaysSent are the request headers the HTTP check carries whatever allowed_headers says (Envoy's list).
var alwaysSent = map[string]bool{"authorization": true, "content-length": true}

func (f *filter) checkHTTP(ctx context.Context, s *httpfilter.Stream, body []byte) (decision, error) {
	c := f.cluster(f.name)
	if c == nil {
		return decision{}, errNoCluster
	}
	h, err := c.Pick(0, false, nil, "")
	if err != nil {
		return decision{}, err
	}
	r := s.Request
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://authz/", rd)
	if err != nil {
		return decision{}, err
	}
	// The cluster picks the address; the path is path_prefix + the request's.
	req.URL = &url.URL{Scheme: "http", Host: h.Addr, Path: f.pathPrefix + r.URL.Path, RawPath: f.pathPrefix + r.URL.EscapedPath(), RawQuery: r.URL.RawQuery}
	req.Host = r.Host
	for k, vs := range r.Header {
		if alwaysSent[strings.ToLower(k)] || f.allowedHeaders.has(k) {
			req.Header[k] = vs
		}
	}
	for _, kv := range f.headersToAdd {
		req.Header.Set(kv[0], kv[1])
	}
	resp, err := c.RoundTrip(req, h)
	if err != nil {
		return decision{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return decision{}, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		d := decision{allowed: true}
		for k, vs := range resp.Header {
			if f.toUpstream.has(k) && len(vs) > 0 {
				d.toUpstream = append(d.toUpstream, [2]string{k, vs[0]})
			}
			if f.toClientOK.has(k) && len(vs) > 0 {
				d.toClientAdd = append(d.toClientAdd, [2]string{k, vs[0]})
			}
		}
		return d, nil
	case resp.StatusCode >= 500:
		return decision{}, fmt.Errorf("ext_authz: the authorization service answered %d", resp.StatusCode)
	}
	d := decision{status: resp.StatusCode, body: string(b), toClient: http.Header{}}
	for k, vs := range resp.Header {
		lk := strings.ToLower(k)
		switch {
		case lk == "host" || lk == "content-length" || lk == "transfer-encoding" || lk == "connection":
		case f.toClient == nil, f.toClient.has(k), lk == "www-authenticate" || lk == "location":
			d.toClient[k] = vs
		}
	}
	return d, nil
}

// conn is the channel to the gRPC service. One that is in transient
// failure is replaced by a new one, whose first check dials at once: as
// Envoy connects anew for a request while the service is down, a check
// made after the service is back reaches it, where a kept channel would
// fail every check until its reconnect backoff (up to two minutes) ran out.
func (f *filter) conn() (*grpc.ClientConn, error) {
	if cc := f.grpcConn.Load(); cc != nil && cc.GetState() != connectivity.TransientFailure {
		return cc, nil
	}
	f.grpcMu.Lock()
	defer f.grpcMu.Unlock()
	old := f.grpcConn.Load()
	if old != nil && old.GetState() != connectivity.TransientFailure {
		return old, nil // another check replaced it
	}
	cc, err := grpc.NewClient("passthrough:///"+f.name,
		grpc.WithTransportCredentials(insecure.NewCredentials()), // the cluster's transport socket secures the connection
		grpc.WithAuthority(f.authority),
		grpc.WithIdleTimeout(time.Minute),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			c := f.cluster(f.name)
			if c == nil {
				return nil, errNoCluster
			}
			h, err := c.Pick(0, false, nil, "")
			if err != nil {
				return nil, err
			}
			return c.DialGRPC(ctx, h)
		}))
	if err != nil {
		return nil, fmt.Errorf("ext_authz: gRPC channel to %s: %w", f.name, err)
	}
	if old != nil {
		old.Close() // in transient failure: its checks fail fast already
	}
	f.grpcConn.Store(cc)
	return cc, nil
}

func (f *filter) checkGRPC(ctx context.Context, s *httpfilter.Stream, body []byte) (decision, error) {
	cc, err := f.conn()
	if err != nil {
		return decision{}, err
	}
	resp, err := authv3.NewAuthorizationClient(cc).Check(ctx, checkRequest(s, body, f.body))
	if err != nil {
		return decision{}, err
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		d := decision{allowed: true}
		ok := resp.GetOkResponse()
		for _, h := range ok.GetHeaders() {
			kv := [2]string{h.GetHeader().GetKey(), h.GetHeader().GetValue()}
			// In an OkHttpResponse, append defaults to false: the header is set.
			if h.GetAppend().GetValue() || h.GetAppendAction() == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				d.appendUp = append(d.appendUp, kv)
			} else {
				d.toUpstream = append(d.toUpstream, kv)
			}
		}
		d.removeUp = ok.GetHeadersToRemove()
		for _, h := range ok.GetResponseHeadersToAdd() {
			d.toClientAdd = append(d.toClientAdd, [2]string{h.GetHeader().GetKey(), h.GetHeader().GetValue()})
		}
		return d, nil
	}
	dr := resp.GetDeniedResponse()
	d := decision{status: int(dr.GetStatus().GetCode()), body: dr.GetBody(), toClient: http.Header{}}
	for _, h := range dr.GetHeaders() {
		d.toClient.Add(h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	return d, nil
}

// checkRequest describes the request as Envoy's CheckRequest does.
func checkRequest(s *httpfilter.Stream, body []byte, bs *bodySettings) *authv3.CheckRequest {
	r := s.Request
	hdr := make(map[string]string, len(r.Header)+4)
	for k, vs := range r.Header {
		hdr[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	scheme := "http"
	if s.Peer.TLS != nil {
		scheme = "https"
	}
	hdr[":authority"], hdr[":method"], hdr[":path"], hdr[":scheme"] = r.Host, r.Method, r.URL.RequestURI(), scheme
	hr := &authv3.AttributeContext_HttpRequest{
		Id: r.Header.Get("X-Request-Id"), Method: r.Method, Headers: hdr, Path: r.URL.RequestURI(),
		Host: r.Host, Scheme: scheme, Protocol: r.Proto, Size: r.ContentLength,
	}
	if body != nil {
		if bs != nil && bs.asBytes {
			hr.RawBody = body
		} else {
			hr.Body = string(body)
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: sockAddr(s.Peer.Remote.String()), Principal: s.Peer.Principal()},
		Destination: &authv3.AttributeContext_Peer{Address: sockAddr(s.Peer.Local.String())},
		Request:     &authv3.AttributeContext_Request{Time: timestamppb.Now(), Http: hr},
	}}
}

func sockAddr(hp string) *corev3.Address {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return nil
	}
	var p uint32
	fmt.Sscan(port, &p)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}
}
