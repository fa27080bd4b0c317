package listener

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mesh.dev/mesh/internal/proxy/accesslog"
	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/router"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
	"mesh.dev/mesh/internal/proxy/tracing"
)

// HTTPStats are per-HCM counters, named as Envoy names them under http.<stat_prefix>.
type HTTPStats struct {
	RqTotal, Rq2xx, Rq3xx, Rq4xx, Rq5xx, NoRoute, NoCluster, RqTimeout, Mirrored atomic.Int64
	// FailedPathNormalization and RedirectedNormalizedPath count requests the
	// path settings answered 400 or 307 (downstream_rq_failed_path_normalization,
	// downstream_rq_redirected_with_normalized_path).
	FailedPathNormalization, RedirectedNormalizedPath atomic.Int64
	// LeanServed counts requests the lean HTTP/1.1 path served itself (ours, not an Envoy stat; not exported).
	LeanServed atomic.Int64
}

// Request describes a finished request for metrics and access logs.
type Request = accesslog.Entry

// Observer receives every finished request (metrics, logs).
type Observer interface {
	Observe(*Request)
}

// reqState travels in the request context from ServeHTTP to the upstream round tripper.
type reqState struct {
	hcm      *HCM
	route    *router.Route
	wc       *router.WeightedCluster
	cluster  *cluster.Cluster
	origDst  string
	hash     uint64
	hasHash  bool
	body     []byte
	host     string
	flags    string
	perTryTO bool
	respHdr  http.Header // the response's headers, for access logs (nil: none kept)
	vars     router.Vars
	table    *router.Table
	fs       httpfilter.Stream // the request as the HTTP filters see it
	span     *tracing.Span     // the request's span; nil without tracing
	spanV    tracing.Span      // what span points at
	done     httpfilter.Done   // the completion phase's report
}

type stateKey struct{}

const maxBuffered = 1 << 20 // Envoy's default per-request buffer limit

func (m *HCM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if m.draining.Load() && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	st := &reqState{hcm: m}
	sw := &statusWriter{ResponseWriter: w, chain: m.filters, fs: &st.fs}
	ci, _ := r.Context().Value(connKey{}).(*connInfo)
	if r.TLS == nil && ci != nil && ci.tlsState != nil {
		r.TLS = ci.tlsState
	}
	if ci != nil {
		st.vars.Remote, st.vars.Local = ci.src.String(), ci.dst.String()
		if m.listener.UseOriginalDst || true {
			st.origDst = ci.dst.String()
		}
	} else {
		st.vars.Remote = r.RemoteAddr
	}
	st.vars.Protocol, st.vars.Req = r.Proto, r.Header
	m.handle(sw, r, st)
	st.respHdr = w.Header()
	m.finish(start, r, st, sw.status, sw.n, nil, "")
}

// finish counts a finished request and reports it to access logs and the
// observer. The lean path passes a Request to reuse (the observer and logs
// are done with it when they return) and the request target it already has.
func (m *HCM) finish(start time.Time, r *http.Request, st *reqState, code int, bytesOut int64, info *Request, uri string) {
	m.Stats.RqTotal.Add(1)
	if code == 0 {
		code = 200
	}
	switch {
	case code >= 500:
		m.Stats.Rq5xx.Add(1)
	case code >= 400:
		m.Stats.Rq4xx.Add(1)
	case code >= 300:
		m.Stats.Rq3xx.Add(1)
	default:
		m.Stats.Rq2xx.Add(1)
	}
	if m.filters.Completes() {
		m.complete(start, r, st, code, bytesOut)
	}
	if m.env.Observer == nil && len(m.logs) == 0 {
		m.endTrace(r, st, code, nil)
		return
	}
	if info == nil {
		info = new(Request)
	}
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	*info = Request{
		Start: start, Duration: time.Since(start), Method: r.Method, Path: uri, Host: r.Host, Protocol: r.Proto,
		Status: code, Flags: st.flags, UpstreamHost: st.host, BytesOut: bytesOut, BytesIn: max(r.ContentLength, 0),
		Remote: st.vars.Remote, Principal: meshtls.Principal(r.TLS), Direction: m.listener.Direction, Listener: m.listener.Name,
		RequestID: r.Header.Get("X-Request-Id"), UserAgent: r.UserAgent(), Header: r.Header,
		GRPC:  strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc"),
		Local: st.vars.Local, SNI: st.fs.Peer.SNI, TLS: r.TLS, RespHeader: st.respHdr, Meta: st.fs.Meta(),
	}
	if st.cluster != nil {
		info.Cluster = st.cluster.Name
	}
	if st.route != nil {
		info.Route = st.route.Name
	}
	if info.Flags == "" {
		info.Flags = "-"
	}
	m.endTrace(r, st, code, info)
	for _, l := range m.logs {
		l.Log(info)
	}
	if m.env.Observer != nil {
		m.env.Observer.Observe(info)
	}
}

// complete runs the filters' completion phase (the stats filter's metrics).
func (m *HCM) complete(start time.Time, r *http.Request, st *reqState, code int, bytesOut int64) {
	// In the request's state: handed to the filters, a local would escape (an allocation per request).
	d := &st.done
	*d = httpfilter.Done{Code: code, Flags: st.flags, Duration: time.Since(start), BytesIn: max(r.ContentLength, 0), BytesOut: bytesOut,
		RespHeader: st.respHdr}
	if d.Flags == "" {
		d.Flags = "-"
	}
	if st.cluster != nil {
		d.Cluster = st.cluster.Name
	}
	if h := st.respHdr; h != nil {
		if d.GRPCStatus = h.Get("Grpc-Status"); d.GRPCStatus == "" {
			d.GRPCStatus = h.Get(http.TrailerPrefix + "Grpc-Status")
		}
	}
	if st.fs.Request == nil {
		// Answered before the filters ran (a path the normalization refused): they still record it.
		p := httpfilter.Peer{TLS: r.TLS}
		if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok {
			p.Remote, p.Local, p.SNI = ci.src, ci.dst, ci.sni
		}
		st.fs.Reset(r.Context(), r, p, nil, nil)
	}
	m.filters.Complete(&st.fs, d)
}

func (m *HCM) handle(w *statusWriter, r *http.Request, st *reqState) {
	if !m.normalizePath(w, r) {
		return
	}
	snap := m.env.Store.Load()
	t := m.table(snap)
	var rt *router.Route
	if t != nil {
		rt = t.Lookup(r)
	}
	st.table, st.route = t, rt
	if rt != nil && len(rt.Weighted) > 0 {
		// Picked before the filters run: a weighted cluster's typed_per_filter_config is the most specific level.
		st.wc = rt.PickCluster(rand.Uint32())
	}
	ensureRequestID(r)
	m.startTrace(r, st)
	p := httpfilter.Peer{TLS: r.TLS}
	if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok {
		p.Remote, p.Local, p.SNI = ci.src, ci.dst, ci.sni
	}
	fs := &st.fs
	fs.Reset(r.Context(), r, p, rt, st.wc)
	// The HTTP filters run first, as in Envoy, then the router below.
	if m.filters.DecodeHeaders(fs) == httpfilter.Stop {
		st.flags = fs.Flags()
		writeFilterReply(w, r, fs)
		return
	}
	if m.filters.WantsBody() {
		// Every body filter gets its phase, with no body too (an
		// ext_authz check that waits for the body must still run).
		var b []byte
		var err error
		if r.Body != nil && r.Body != http.NoBody {
			b, err = io.ReadAll(io.LimitReader(r.Body, maxBuffered+1))
		}
		switch {
		case err != nil:
			st.flags = "DC"
			w.WriteHeader(http.StatusBadRequest)
			return
		case len(b) > maxBuffered:
			// Envoy's answer when a filter buffering the body hits the buffer limit.
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			io.WriteString(w, "Payload Too Large")
			return
		}
		if b != nil {
			st.body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		if m.filters.DecodeBody(fs, b) == httpfilter.Stop {
			st.flags = fs.Flags()
			writeFilterReply(w, r, fs)
			return
		}
	}
	st.flags = fs.Flags()
	if t == nil {
		m.Stats.NoRoute.Add(1)
		st.flags = "NR"
		http.Error(w, "", http.StatusNotFound)
		return
	}
	if rt == nil {
		m.Stats.NoRoute.Add(1)
		st.flags = "NR"
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if rt.Direct != nil {
		w.WriteHeader(rt.Direct.Status)
		io.WriteString(w, rt.Direct.Body)
		return
	}
	if rt.Redirect != nil {
		w.Header().Set("Location", rt.Redirect.Location(r, rt, r.TLS != nil))
		code := rt.Redirect.Code
		if code == 0 {
			code = 301
		}
		w.WriteHeader(code)
		return
	}
	name := rt.Cluster
	if st.wc != nil {
		name = st.wc.Name
	}
	c := snap.Cluster(name)
	if c == nil {
		m.Stats.NoCluster.Add(1)
		st.flags = "NC"
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	st.cluster = c
	upgrade := r.Header.Get("Upgrade") != ""
	if upgrade {
		// The router's part of an upgrade: carried only where the connection
		// manager or the route enables its type; Envoy refuses others with 403.
		typ := strings.ToLower(textproto.TrimString(r.Header.Get("Upgrade")))
		if !rt.UpgradeAllowed(typ, m.upgrades[typ]) {
			st.flags = "UPE"
			w.WriteHeader(http.StatusForbidden)
			return
		}
	}
	st.hash, st.hasHash = rt.HashKey(r, st.vars.Remote)
	if st.body == nil && (rt.Retry != nil && rt.Retry.NumRetries > 0 || len(rt.Mirrors) > 0) && r.Body != nil && r.Body != http.NoBody && r.ContentLength > 0 && r.ContentLength <= maxBuffered {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		st.body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	for _, mp := range rt.Mirrors {
		if mp.Fraction.Hit() {
			if mc := snap.Cluster(mp.Cluster); mc != nil {
				m.Stats.Mirrored.Add(1)
				go mirror(r, st, mc)
			}
		}
	}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	if rt.Timeout > 0 && !upgrade {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	m.proxy.ServeHTTP(w, r.WithContext(ctx))
}

func (m *HCM) rewrite(pr *httputil.ProxyRequest) {
	st := pr.Out.Context().Value(stateKey{}).(*reqState)
	rt := st.route
	out := pr.Out
	// ReverseProxy's Rewrite mode drops forwarding headers; Envoy keeps X-Forwarded-For and appends when it is the edge.
	if xff := pr.In.Header["X-Forwarded-For"]; len(xff) > 0 {
		out.Header["X-Forwarded-For"] = xff
	}
	if m.useRemote {
		if h, _, err := net.SplitHostPort(st.vars.Remote); err == nil {
			if prior := out.Header.Get("X-Forwarded-For"); prior != "" {
				out.Header.Set("X-Forwarded-For", prior+", "+h)
			} else {
				out.Header.Set("X-Forwarded-For", h)
			}
		}
	}
	if pr.In.TLS != nil {
		out.Header.Set("X-Forwarded-Proto", "https")
	} else if out.Header.Get("X-Forwarded-Proto") == "" {
		out.Header.Set("X-Forwarded-Proto", "http")
	}
	if p := rt.RewritePath(pr.In.URL.Path); p != pr.In.URL.Path {
		out.URL.Path, out.URL.RawPath = p, ""
	}
	if rt.HostRewrite != "" {
		out.Host = rt.HostRewrite
	}
	m.xfccHeader(pr.In, pr.Out.Header)
	out.Header.Set("X-Envoy-Expected-Rq-Timeout-Ms", strconv.FormatInt(rt.Timeout.Milliseconds(), 10))
	if st.wc != nil {
		st.wc.Request.Apply(out.Header, &st.vars)
	}
	rt.Request.Apply(out.Header, &st.vars)
	rt.VH.Request.Apply(out.Header, &st.vars)
	st.table.Request.Apply(out.Header, &st.vars)
	out.URL.Scheme, out.URL.Host = "http", st.cluster.Name
}

func (m *HCM) modifyResponse(resp *http.Response) error {
	st := resp.Request.Context().Value(stateKey{}).(*reqState)
	if st.wc != nil {
		st.wc.Response.Apply(resp.Header, &st.vars)
	}
	st.route.Response.Apply(resp.Header, &st.vars)
	st.route.VH.Response.Apply(resp.Header, &st.vars)
	st.table.Response.Apply(resp.Header, &st.vars)
	if m.filters.WantsResponseBody() && resp.StatusCode != http.StatusSwitchingProtocols {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBuffered+1))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if len(b) > maxBuffered {
			return errResponseTooLarge
		}
		b = m.filters.EncodeBody(&st.fs, resp.StatusCode, resp.Header, b)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.TransferEncoding = nil
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	}
	return nil
}

// errResponseTooLarge is an upstream answer larger than a body-reading filter may buffer.
var errResponseTooLarge = errors.New("response body over the buffer limit")

func (m *HCM) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(stateKey{}).(*reqState)
	w.Header().Set("Content-Type", "text/plain")
	switch {
	case errors.Is(err, errResponseTooLarge):
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "Internal Server Error")
	case errors.Is(err, cluster.ErrOverflow):
		st.flags = "UO"
		w.Header().Set("X-Envoy-Overloaded", "true")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "upstream connect error or disconnect/reset before headers. reset reason: overflow")
	case errors.Is(err, cluster.ErrNoHealthyUpstream):
		st.flags = "UH"
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "no healthy upstream")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errPerTryTimeout):
		st.flags = "UT"
		m.Stats.RqTimeout.Add(1)
		if st.cluster != nil {
			st.cluster.Stats.RqTimeout.Add(1)
		}
		w.WriteHeader(http.StatusGatewayTimeout)
		io.WriteString(w, "upstream request timeout")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		st.flags = "DC"
		w.WriteHeader(499)
	default:
		st.flags = "UF"
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
	}
}

var errPerTryTimeout = errors.New("upstream per-try timeout")

// upstream is the round tripper behind ReverseProxy: it picks hosts and retries.
type upstream struct{}

func (upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	st := req.Context().Value(stateKey{}).(*reqState)
	c := st.cluster
	if !c.Acquire() {
		return nil, cluster.ErrOverflow
	}
	pol := st.route.Retry
	var prev *cluster.Host
	for attempt := 0; ; attempt++ {
		h, err := c.Pick(st.hash, st.hasHash, prev, st.origDst)
		if err != nil {
			c.Release()
			return nil, err
		}
		st.host = h.Addr
		if st.route.AutoHost && h.Hostname != "" {
			req.Host = h.Hostname // auto_host_rewrite: the chosen host's name
		}
		try := req
		if attempt > 0 {
			try = req.Clone(req.Context())
			if st.body != nil {
				try.Body = io.NopCloser(bytes.NewReader(st.body))
			}
			try.Header.Set("X-Envoy-Attempt-Count", strconv.Itoa(attempt+1))
		}
		var cancel context.CancelFunc = func() {}
		if pol != nil && pol.PerTryTimeout > 0 {
			var ctx context.Context
			ctx, cancel = context.WithTimeoutCause(try.Context(), pol.PerTryTimeout, errPerTryTimeout)
			try = try.WithContext(ctx)
		}
		resp, err := c.RoundTrip(try, h)
		if err != nil && pol != nil && pol.PerTryTimeout > 0 && context.Cause(try.Context()) == errPerTryTimeout && req.Context().Err() == nil {
			err = errPerTryTimeout
		}
		canRetry := pol != nil && attempt < pol.NumRetries && req.Context().Err() == nil &&
			(st.body != nil || req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0) &&
			pol.ShouldRetry(resp, err, isConnectErr(err))
		if canRetry && c.AcquireRetry() {
			if resp != nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
			}
			cancel()
			prev = h
			wait := pol.Backoff(attempt+1, rand.Uint64())
			tm := time.NewTimer(wait)
			select {
			case <-tm.C:
			case <-req.Context().Done():
			}
			c.ReleaseRetry()
			continue
		}
		if err != nil {
			cancel()
			c.Release()
			return nil, err
		}
		if attempt > 0 {
			c.Stats.RqRetrySuccess.Add(1)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			c.Release()
			go func() { <-req.Context().Done(); cancel() }()
			return resp, nil // the body is the raw upgraded stream; ReverseProxy needs it unwrapped
		}
		resp.Body = &releaseBody{ReadCloser: resp.Body, done: func() { cancel(); c.Release() }}
		return resp, nil
	}
}

func isConnectErr(err error) bool {
	var op *net.OpError
	return err != nil && errors.As(err, &op) && op.Op == "dial"
}

type releaseBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// mirror sends a copy of the request to another cluster and drops the answer.
func mirror(r *http.Request, st *reqState, c *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var body io.Reader
	if st.body != nil {
		body = bytes.NewReader(st.body)
	}
	// The URL's host is the picked endpoint's (Cluster.RoundTrip); a
	// cluster name ("outbound|8080||...") is no URL host at all.
	out, err := http.NewRequestWithContext(ctx, r.Method, "http://mirror/", body)
	if err != nil {
		return
	}
	out.URL.Path = st.route.RewritePath(r.URL.Path)
	out.URL.RawQuery = r.URL.RawQuery
	out.Header = r.Header.Clone()
	host, _, ok := strings.Cut(r.Host, ":")
	if !ok {
		host = r.Host
	}
	out.Host = host + "-shadow" // Envoy's marker for mirrored traffic
	if !c.Acquire() {
		return
	}
	defer c.Release()
	h, err := c.Pick(0, false, nil, st.origDst)
	if err != nil {
		return
	}
	resp, err := c.RoundTrip(out, h)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// writeFilterReply writes the local reply a filter made; nothing when the filter abandoned the request.
func writeFilterReply(w http.ResponseWriter, r *http.Request, fs *httpfilter.Stream) {
	lr, ok := fs.Reply()
	if !ok {
		return
	}
	h := w.Header()
	for k, v := range lr.Header {
		h[k] = v
	}
	if lr.Body != "" && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain")
	}
	w.WriteHeader(lr.Code)
	io.WriteString(w, lr.Body)
}

// statusWriter records the status and size of the response, and lets the
// HTTP filters' response phase edit the headers of whatever answer is written.
type statusWriter struct {
	http.ResponseWriter
	status  int
	n       int64
	chain   *httpfilter.Chain
	fs      *httpfilter.Stream
	encoded bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		w.status = code
		if !w.encoded && w.fs.Encodes(w.chain) {
			w.encoded = true
			w.chain.EncodeHeaders(w.fs, code, w.ResponseWriter.Header())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type bufPool struct{}

var pool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufPool) Get() []byte  { return *(pool.Get().(*[]byte)) }
func (bufPool) Put(b []byte) { pool.Put(&b) }
