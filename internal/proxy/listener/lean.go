package listener

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/router"
)

// The lean HTTP/1.1 path serves HTTP/1.1 connections (plaintext, or TLS
// that did not negotiate h2) on its own
// loop instead of net/http's server, ReverseProxy and Transport: one
// goroutine per downstream connection parses the request into a reused
// http.Request (so routing, header rules and hashing are the same code as
// the net/http path), writes it to a pooled upstream connection and copies
// the answer back. Anything it does not handle itself (HTTP/2 prior
// knowledge, upgrades, Expect, chunked or large request bodies, HTTP/1.0,
// direct responses, redirects, mirrors, HTTP/2 upstreams, malformed
// heads) makes it hand the connection, with every byte
// it has read but not used, to the chain's net/http server, which then owns
// it to the end. A hand-off happens before the request is consumed, so the
// net/http path sees the request whole.

const (
	leanBufSize  = 4 << 10
	leanMaxBody  = 64 << 10 // request bodies up to this are buffered, so retries and stale-connection resends can replay them
	leanMaxHead  = leanBufSize
	leanMaxRetry = 1 // fresh-connection resends after a reused upstream connection fails before answering
)

var errHandOff = errors.New("hand off to the net/http server")

// leanConns tracks a chain's lean connections so drains can close idle ones and wait for busy ones.
type leanConns struct {
	mu  sync.Mutex
	set map[*leanConn]struct{}
}

func (s *leanConns) add(c *leanConn) {
	s.mu.Lock()
	if s.set == nil {
		s.set = map[*leanConn]struct{}{}
	}
	s.set[c] = struct{}{}
	s.mu.Unlock()
}

func (s *leanConns) remove(c *leanConn) {
	s.mu.Lock()
	delete(s.set, c)
	s.mu.Unlock()
}

// closeIdle wakes every connection waiting for its next request; they see the drain and close.
func (s *leanConns) closeIdle() {
	s.mu.Lock()
	for c := range s.set {
		if c.idle.Load() {
			c.mc.Conn.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
}

// wait blocks until no lean connection is left or ctx ends.
func (s *leanConns) wait(ctx context.Context) {
	for {
		s.closeIdle()
		s.mu.Lock()
		n := len(s.set)
		s.mu.Unlock()
		if n == 0 || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// leanConn is one downstream connection on the lean path with the buffers and request it reuses.
type leanConn struct {
	mc        *metaConn
	br        *bufio.Reader
	bw        *bufio.Writer
	idle      atomic.Bool
	req       http.Request
	url       url.URL
	hdr       http.Header
	rhdr      http.Header
	lhdr      http.Header // local reply headers, when filters edit responses
	resp      http.Response
	body      []byte
	scr       []byte
	remote    string
	local     string
	tls       *tls.ConnectionState // nil for plaintext
	st        reqState
	close     bool   // the client asked for Connection: close
	target    string // request target sent upstream (rewritten when the route says so)
	rawTarget string // request target as the client sent it
	upHost    string // Host for this attempt when auto_host_rewrite names the upstream host
	info      Request
}

// leanEligible reports whether connections of this HCM may start on the lean path.
func (m *HCM) leanEligible() bool {
	// The lean path streams answers; a filter reading whole response bodies needs net/http's buffering.
	return m.codec != hcmv3.HttpConnectionManager_HTTP2 && leanOff == "" && !m.env.NoLean && !m.filters.WantsResponseBody()
}

// leanOff disables the lean path (MESH_PROXY_LEAN_HTTP1=off) to compare it with the net/http path.
var leanOff = func() string {
	if os.Getenv("MESH_PROXY_LEAN_HTTP1") == "off" {
		return "off"
	}
	return ""
}()

// serveLean runs the lean loop on a connection (conn is mc, or a TLS
// connection over it) until it closes or is handed off.
func (m *HCM) serveLean(ch *chain, mc *metaConn, conn net.Conn) {
	var src io.Reader = mc.Conn
	tc, isTLS := conn.(*tls.Conn)
	if isTLS {
		src = tc
	}
	lc := &leanConn{mc: mc, br: bufio.NewReaderSize(src, leanBufSize), bw: bufio.NewWriterSize(conn, leanBufSize),
		hdr: http.Header{}, rhdr: http.Header{}, lhdr: http.Header{}, remote: mc.info.src.String(), local: mc.info.dst.String()}
	if isTLS {
		cs := tc.ConnectionState()
		lc.tls = &cs
	}
	lc.req.URL = &lc.url
	ch.lean.add(lc)
	defer ch.lean.remove(lc)
	idle := m.idle
	if idle == 0 {
		idle = time.Hour
	}
	var armed time.Time
	for {
		// A draining connection still serves a request that is already on
		// its way (the answer says Connection: close); idle ones are closed
		// by the drain through closeIdle.
		lc.idle.Store(true)
		// The idle deadline stays armed while a request is served (only
		// heads and bodies are read here); re-arming it costs a timer
		// update, so it is moved only when 1/16 of it has passed.
		if now := time.Now(); now.Sub(armed) > idle/16 {
			armed = now
			mc.Conn.SetReadDeadline(now.Add(idle))
		}
		head, err := lc.peekHead()
		lc.idle.Store(false)
		if err == nil {
			err = m.leanServe(lc, head)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, errHandOff):
			mc.Conn.SetReadDeadline(time.Time{})
			var next net.Conn = mc
			if isTLS {
				mc.info.tlsState = lc.tls
				next = &tlsHandOff{Conn: tc, r: lc.br, mc: mc}
			} else {
				mc.r = lc.br
				if b, _ := lc.br.Peek(3); string(b) == "PRI" {
					mc.batch() // HTTP/2 with prior knowledge
				}
			}
			if !ch.conns.push(next) {
				conn.Close()
			}
		default:
			conn.Close()
		}
		return
	}
}

// tlsHandOff is a TLS connection handed to net/http with the bytes the lean
// path already decrypted; NetConn leads ConnContext to the connection's facts.
type tlsHandOff struct {
	net.Conn
	r  io.Reader
	mc *metaConn
}

func (c *tlsHandOff) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn returns the connection under TLS, as tls.Conn does.
func (c *tlsHandOff) NetConn() net.Conn { return c.mc }

// peekHead waits until a whole request head is buffered and returns it without consuming it.
func (lc *leanConn) peekHead() ([]byte, error) {
	for {
		buf, _ := lc.br.Peek(lc.br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], nil
		}
		if len(buf) >= 3 && string(buf[:3]) == "PRI" || bytes.Contains(buf, []byte("\n\n")) || len(buf) >= leanMaxHead {
			return nil, errHandOff
		}
		if _, err := lc.br.Peek(len(buf) + 1); err != nil {
			if len(buf) > 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errHandOff // let net/http answer a truncated head
			}
			return nil, err
		}
	}
}

var leanMethods = map[string]string{"GET": "GET", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE", "HEAD": "HEAD", "OPTIONS": "OPTIONS", "PATCH": "PATCH"}

// parseHead fills lc.req from a request head; errHandOff for anything the lean path leaves to net/http.
func (lc *leanConn) parseHead(head []byte) error {
	// Lines end in CRLF only; a bare CR or LF is left to net/http's stricter reading.
	for i, c := range head {
		if c == '\n' && (i == 0 || head[i-1] != '\r') || c == '\r' && (i+1 == len(head) || head[i+1] != '\n') {
			return errHandOff
		}
	}
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 || string(line[sp2+1:]) != "HTTP/1.1" {
		return errHandOff
	}
	method, ok := leanMethods[string(line[:sp1])]
	if !ok {
		return errHandOff
	}
	target := line[sp1+1 : sp2]
	if target[0] != '/' || bytes.IndexByte(target, '#') >= 0 {
		return errHandOff
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return errHandOff // net/http answers 400
		}
	}
	r := &lc.req
	clear(lc.hdr)
	*r = http.Request{Method: method, URL: &lc.url, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: lc.hdr, Body: http.NoBody, RemoteAddr: lc.remote, TLS: lc.tls}
	lc.target = string(target)
	lc.rawTarget = lc.target
	if bytes.IndexByte(target, '%') >= 0 {
		u, err := url.ParseRequestURI(lc.target)
		if err != nil {
			return errHandOff
		}
		lc.url = *u
	} else {
		p, q, _ := strings.Cut(lc.target, "?")
		lc.url = url.URL{Path: p, RawQuery: q}
	}
	lc.close = false
	cl := int64(-1)
	sawHost := false
	for len(rest) > 2 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || l[0] == ' ' || l[0] == '\t' {
			return errHandOff
		}
		k, ok := leanKey(l[:colon])
		if !ok {
			return errHandOff
		}
		v := textproto.TrimBytes(l[colon+1:])
		if !validFieldValue(v) {
			return errHandOff // net/http answers 400
		}
		switch k {
		case "Host":
			if sawHost {
				return errHandOff
			}
			sawHost = true
			r.Host = string(v)
			continue
		case "Content-Length":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 || cl >= 0 && cl != n {
				return errHandOff
			}
			cl = n
			continue
		case "Transfer-Encoding", "Upgrade", "Expect", "Http2-Settings":
			return errHandOff
		}
		lc.hdr[k] = append(lc.hdr[k], string(v))
	}
	if r.Host == "" {
		return errHandOff
	}
	if cl > leanMaxBody {
		return errHandOff
	}
	r.ContentLength = max(cl, 0)
	for _, v := range lc.hdr["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			tok = textproto.TrimString(tok)
			switch {
			case strings.EqualFold(tok, "close"):
				lc.close = true
			case strings.EqualFold(tok, "upgrade"):
				return errHandOff
			case tok != "" && !strings.EqualFold(tok, "keep-alive"):
				delete(lc.hdr, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(lc.hdr, k)
	}
	return nil
}

// hopHeaders are removed from proxied requests and responses (RFC 9110 7.6.1), as ReverseProxy does.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// leanKeys interns the canonical forms of common header names so parsing them allocates nothing.
var leanKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Content-Length", "Content-Type",
		"Connection", "Cookie", "Authorization", "X-Request-Id", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded",
		"Traceparent", "Tracestate", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags", "B3",
		"Cache-Control", "Pragma", "Origin", "Referer", "Keep-Alive", "Te", "Upgrade", "Transfer-Encoding", "Expect",
		"Date", "Server", "Etag", "Last-Modified", "Vary", "Location", "Set-Cookie", "Content-Encoding", "Grpc-Status",
		"X-Envoy-Upstream-Service-Time", "X-Forwarded-Client-Cert", "Proxy-Connection", "Trailer", "Http2-Settings"} {
		m[k] = k
		m[strings.ToLower(k)] = k
	}
	return m
}()

// leanKey returns the canonical header name for raw; false when raw is not a valid field name.
func leanKey(raw []byte) (string, bool) {
	if k, ok := leanKeys[string(raw)]; ok {
		return k, true
	}
	for _, c := range raw {
		if !validHeaderByte(c) {
			return "", false
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(raw)), true
}

// validFieldValue reports whether v has no control characters but tabs (RFC 9110 5.5).
func validFieldValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validHeaderByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// leanServe handles one request head on the lean path: it either answers
// the request (nil, or an error that closes the connection) or hands off
// before consuming anything.
func (m *HCM) leanServe(lc *leanConn, head []byte) error {
	if err := lc.parseHead(head); err != nil {
		return err
	}
	if err := m.leanNormalizePath(lc); err != nil {
		return err
	}
	r := &lc.req
	snap := m.env.Store.Load()
	t := m.table(snap)
	var rt *router.Route
	if t != nil {
		rt = t.Lookup(r)
	}
	var c *cluster.Cluster
	var wc *router.WeightedCluster
	if rt != nil {
		if rt.Direct != nil || rt.Redirect != nil || len(rt.Mirrors) > 0 {
			return errHandOff
		}
		name := rt.Cluster
		if len(rt.Weighted) > 0 {
			wc = rt.PickCluster(rand.Uint32())
			name = wc.Name
		}
		if c = snap.Cluster(name); c != nil && !c.LeanH1() {
			return errHandOff
		}
	}
	// The request is ours from here on.
	lc.br.Discard(len(head))
	m.Stats.LeanServed.Add(1)
	start := time.Now()
	if r.ContentLength > 0 {
		if cap(lc.body) < int(r.ContentLength) {
			lc.body = make([]byte, r.ContentLength)
		}
		lc.body = lc.body[:r.ContentLength]
		if _, err := io.ReadFull(lc.br, lc.body); err != nil {
			return err
		}
	} else {
		lc.body = lc.body[:0]
	}
	st := &lc.st
	*st = reqState{hcm: m, table: t, route: rt, wc: wc, cluster: c, origDst: lc.local}
	st.vars = router.Vars{Remote: lc.remote, Local: lc.local, Protocol: r.Proto, Req: r.Header}
	ensureRequestID(r)
	m.startTrace(r, st)
	fs := &st.fs
	fs.Reset(nil, r, httpfilter.Peer{Remote: lc.mc.info.src, Local: lc.mc.info.dst, SNI: lc.mc.info.sni, TLS: lc.tls}, rt, wc)
	var code int
	var n int64
	var err error
	// The HTTP filters run first, as in Envoy, then the router: this path's
	// own part is only how the router's answer and local replies are written.
	ok := m.filters.DecodeHeaders(fs) == httpfilter.Continue && m.filters.DecodeBody(fs, lc.body) == httpfilter.Continue
	st.flags = fs.Flags()
	switch {
	case !ok:
		code, n, err = lc.filterReply(m)
	case t == nil || rt == nil:
		m.Stats.NoRoute.Add(1)
		st.flags = "NR"
		code, n, err = lc.local404(m)
	case c == nil:
		m.Stats.NoCluster.Add(1)
		st.flags = "NC"
		code, n, err = lc.localReply(m, http.StatusServiceUnavailable, nil, "")
	default:
		st.hash, st.hasHash = rt.HashKey(r, lc.remote)
		code, n, err = m.leanProxy(lc, st)
	}
	// Stats and logs are written before the last bytes leave, so a client
	// that has its answer finds the request counted, as on the net/http path.
	m.finish(start, r, st, code, n, &lc.info, lc.rawTarget)
	if ferr := lc.bw.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// filterReply writes the local reply a filter made; a request a filter
// abandoned without one ends its connection.
func (lc *leanConn) filterReply(m *HCM) (int, int64, error) {
	lr, ok := lc.st.fs.Reply()
	if !ok {
		return 0, 0, io.EOF
	}
	return lc.localReply(m, lr.Code, lr.Header, lr.Body)
}

func (lc *leanConn) local404(m *HCM) (int, int64, error) {
	return lc.localReply(m, http.StatusNotFound, nil, "")
}

// localReply writes a response the proxy makes itself.
func (lc *leanConn) localReply(m *HCM, code int, extra http.Header, body string) (int, int64, error) {
	if lc.st.fs.Encodes(m.filters) {
		h := lc.lhdr
		clear(h)
		for k, v := range extra {
			h[k] = v
		}
		m.filters.EncodeHeaders(&lc.st.fs, code, h)
		extra = h
	}
	w := lc.bw
	lc.writeStatus(code)
	for k, vs := range extra {
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if body != "" {
		w.WriteString("Content-Type: text/plain\r\n")
	}
	w.WriteString("Content-Length: ")
	w.Write(strconv.AppendInt(lc.scr[:0], int64(len(body)), 10))
	w.WriteString("\r\n")
	keep := lc.writeConnection(m)
	w.WriteString("\r\n")
	if lc.req.Method != "HEAD" {
		w.WriteString(body)
	}
	if !keep {
		return code, int64(len(body)), io.EOF
	}
	return code, int64(len(body)), nil
}

func (lc *leanConn) writeStatus(code int) {
	w := lc.bw
	w.WriteString("HTTP/1.1 ")
	lc.scr = strconv.AppendInt(lc.scr[:0], int64(code), 10)
	w.Write(lc.scr)
	w.WriteByte(' ')
	w.WriteString(http.StatusText(code))
	w.WriteString("\r\nDate: ")
	w.Write(leanDate())
	w.WriteString("\r\n")
}

// writeConnection adds Connection: close when the connection ends after this response; it reports whether it stays open.
func (lc *leanConn) writeConnection(m *HCM) bool {
	if lc.close || m.draining.Load() {
		lc.bw.WriteString("Connection: close\r\n")
		return false
	}
	return true
}

// leanDate caches the Date header value for a second.
var leanDateCache atomic.Pointer[[2]any]

func leanDate() []byte {
	now := time.Now().Unix()
	if p := leanDateCache.Load(); p != nil && p[0].(int64) == now {
		return p[1].([]byte)
	}
	b := []byte(time.Unix(now, 0).UTC().Format(http.TimeFormat))
	leanDateCache.Store(&[2]any{now, b})
	return b
}

// leanProxy sends the request upstream with retries and copies the answer back.
func (m *HCM) leanProxy(lc *leanConn, st *reqState) (code int, n int64, err error) {
	rt, c := st.route, st.cluster
	m.leanRewrite(lc, st)
	if !c.Acquire() {
		st.flags = "UO"
		return lc.localReply(m, http.StatusServiceUnavailable, http.Header{"X-Envoy-Overloaded": {"true"}},
			"upstream connect error or disconnect/reset before headers. reset reason: overflow")
	}
	defer c.Release()
	var deadline time.Time
	if rt.Timeout > 0 {
		deadline = time.Now().Add(rt.Timeout)
	}
	pol := rt.Retry
	var prev *cluster.Host
	for attempt := 0; ; attempt++ {
		h, perr := c.Pick(st.hash, st.hasHash, prev, st.origDst)
		if perr != nil {
			st.flags = "UH"
			return lc.localReply(m, http.StatusServiceUnavailable, nil, "no healthy upstream")
		}
		st.host = h.Addr
		lc.upHost = ""
		if rt.AutoHost && h.Hostname != "" {
			lc.upHost = h.Hostname // auto_host_rewrite: the chosen host's name
		}
		if attempt > 0 {
			lc.hdr.Set("X-Envoy-Attempt-Count", strconv.Itoa(attempt+1))
		}
		dl, timeout := deadline, rt.Timeout
		perTry := false
		if pol != nil && pol.PerTryTimeout > 0 {
			if t := time.Now().Add(pol.PerTryTimeout); dl.IsZero() || t.Before(dl) {
				dl, timeout, perTry = t, pol.PerTryTimeout, true
			}
		}
		c.BeginRequest(h)
		pc, xerr, connectErr := lc.exchange(c, h, dl, timeout)
		status := 0
		if xerr == nil {
			status = lc.resp.StatusCode
		}
		c.EndRequest(h, status, xerr)
		timedOut := xerr != nil && errors.Is(xerr, os.ErrDeadlineExceeded)
		overall := timedOut && (!perTry || !deadline.IsZero() && !time.Now().Before(deadline))
		var resp *http.Response
		if xerr == nil {
			resp = &lc.resp
		}
		if pol != nil && attempt < pol.NumRetries && !overall && pol.ShouldRetry(resp, xerr, connectErr) && c.AcquireRetry() {
			if pc != nil {
				pc.Close() // the unread answer of a retried attempt is dropped with its connection
			}
			prev = h
			wait := pol.Backoff(attempt+1, rand.Uint64())
			if !deadline.IsZero() {
				wait = min(wait, time.Until(deadline))
			}
			time.Sleep(max(wait, 0))
			c.ReleaseRetry()
			continue
		}
		if xerr != nil {
			return m.leanUpstreamError(lc, st, c, xerr, timedOut)
		}
		if attempt > 0 {
			c.Stats.RqRetrySuccess.Add(1)
		}
		return m.leanRespond(lc, st, pc, h, c)
	}
}

func (m *HCM) leanUpstreamError(lc *leanConn, st *reqState, c *cluster.Cluster, err error, timedOut bool) (int, int64, error) {
	switch {
	case errors.Is(err, cluster.ErrOverflow):
		st.flags = "UO"
		return lc.localReply(m, http.StatusServiceUnavailable, http.Header{"X-Envoy-Overloaded": {"true"}},
			"upstream connect error or disconnect/reset before headers. reset reason: overflow")
	case timedOut:
		st.flags = "UT"
		m.Stats.RqTimeout.Add(1)
		c.Stats.RqTimeout.Add(1)
		return lc.localReply(m, http.StatusGatewayTimeout, nil, "upstream request timeout")
	default:
		st.flags = "UF"
		return lc.localReply(m, http.StatusServiceUnavailable, nil, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
	}
}

// leanRewrite turns the downstream request into the upstream one, as HCM.rewrite does for ReverseProxy.
func (m *HCM) leanRewrite(lc *leanConn, st *reqState) {
	h := lc.hdr
	rt := st.route
	delete(h, "Forwarded")
	delete(h, "X-Forwarded-Host")
	delete(h, "X-Forwarded-Proto")
	if m.useRemote {
		if host, _, err := net.SplitHostPort(lc.remote); err == nil {
			if prior := h.Get("X-Forwarded-For"); prior != "" {
				h.Set("X-Forwarded-For", prior+", "+host)
			} else {
				h.Set("X-Forwarded-For", host)
			}
		}
	}
	h["X-Forwarded-Proto"] = leanHTTP
	if lc.tls != nil {
		h["X-Forwarded-Proto"] = leanHTTPS
	}
	m.xfccHeader(&lc.req, h)
	h["X-Envoy-Expected-Rq-Timeout-Ms"] = []string{strconv.FormatInt(rt.Timeout.Milliseconds(), 10)}
	if st.wc != nil {
		st.wc.Request.Apply(h, &st.vars)
	}
	rt.Request.Apply(h, &st.vars)
	rt.VH.Request.Apply(h, &st.vars)
	st.table.Request.Apply(h, &st.vars)
	if p := rt.RewritePath(lc.url.Path); p != lc.url.Path {
		u := url.URL{Path: p, RawQuery: lc.url.RawQuery}
		lc.target = u.RequestURI()
	}
}

var leanHTTP, leanHTTPS = []string{"http"}, []string{"https"}

// exchange writes the request on a pooled connection and reads the response
// head into lc.resp; the body is left on the returned connection.
func (lc *leanConn) exchange(c *cluster.Cluster, h *cluster.Host, dl time.Time, timeout time.Duration) (pc *cluster.H1Conn, err error, connectErr bool) {
	for try := 0; ; try++ {
		pc, err = c.GetH1(h, dl)
		if err != nil {
			// A connect or handshake that outlives connect_timeout is a
			// connection failure (503); only the route's deadline makes it a timeout.
			if ne, ok := err.(net.Error); ok && ne.Timeout() && !dl.IsZero() && !time.Now().Before(dl) {
				err = os.ErrDeadlineExceeded
			}
			return nil, err, !errors.Is(err, cluster.ErrOverflow)
		}
		pc.SetAttemptDeadline(dl, timeout)
		err = lc.writeRequest(pc)
		if err == nil {
			err = lc.readResponseHead(pc)
		}
		if err == nil {
			return pc, nil, false
		}
		pc.Close()
		if !pc.Reused || try >= leanMaxRetry || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, errBadResponse) {
			return nil, err, false
		}
	}
}

func (lc *leanConn) writeRequest(pc *cluster.H1Conn) error {
	w := pc.W
	r := &lc.req
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(lc.target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	host := r.Host
	if rt := lc.st.route; rt.HostRewrite != "" {
		host = rt.HostRewrite
	}
	if lc.upHost != "" {
		host = lc.upHost
	}
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vs := range lc.hdr {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue // a header rule must not split the request
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if len(lc.body) > 0 || r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH" {
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(lc.scr[:0], int64(len(lc.body)), 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.Write(lc.body)
	return w.Flush()
}

var errBadResponse = errors.New("malformed upstream response")

// readLine reads one CRLF line from br, joining pieces longer than its buffer.
func (lc *leanConn) readLine(br *bufio.Reader) ([]byte, error) {
	l, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte(nil), l...)
		for err == bufio.ErrBufferFull && len(buf) < 1<<20 {
			l, err = br.ReadSlice('\n')
			buf = append(buf, l...)
		}
		l = buf
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

// readResponseHead parses the status line and headers (skipping 1xx answers) into lc.resp.
func (lc *leanConn) readResponseHead(pc *cluster.H1Conn) error {
	for {
		l, err := lc.readLine(pc.R)
		if err != nil {
			return err
		}
		if len(l) < 12 || !bytes.HasPrefix(l, []byte("HTTP/1.")) || l[8] != ' ' {
			return errBadResponse
		}
		code, err := strconv.Atoi(string(l[9:12]))
		if err != nil || code < 100 {
			return errBadResponse
		}
		clear(lc.rhdr)
		lc.resp = http.Response{StatusCode: code, Header: lc.rhdr, ProtoMajor: 1, ProtoMinor: int(l[7] - '0'), ContentLength: -1, Request: &lc.req}
		for {
			l, err := lc.readLine(pc.R)
			if err != nil {
				return err
			}
			if len(l) == 0 {
				break
			}
			colon := bytes.IndexByte(l, ':')
			if colon <= 0 {
				return errBadResponse
			}
			k, ok := leanKey(l[:colon])
			if !ok {
				return errBadResponse
			}
			lc.rhdr[k] = append(lc.rhdr[k], string(textproto.TrimBytes(l[colon+1:])))
		}
		if code >= 200 || code == http.StatusSwitchingProtocols {
			return nil
		}
	}
}

// leanRespond writes the upstream answer downstream and returns the upstream connection to the pool when it is reusable.
func (m *HCM) leanRespond(lc *leanConn, st *reqState, pc *cluster.H1Conn, h *cluster.Host, c *cluster.Cluster) (int, int64, error) {
	resp := &lc.resp
	rh := lc.rhdr
	st.respHdr = rh
	code := resp.StatusCode
	if code == http.StatusSwitchingProtocols {
		pc.Close()
		st.flags = "UPE"
		return lc.localReply(m, http.StatusBadGateway, nil, "")
	}
	upKeep := resp.ProtoMinor >= 1
	chunked := false
	cl := int64(-1)
	for _, v := range rh["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			tok = textproto.TrimString(tok)
			if strings.EqualFold(tok, "close") {
				upKeep = false
			} else if tok != "" && !strings.EqualFold(tok, "keep-alive") {
				delete(rh, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	if te := rh["Transfer-Encoding"]; len(te) > 0 {
		if !strings.EqualFold(te[len(te)-1], "chunked") {
			pc.Close()
			st.flags = "UPE"
			return lc.localReply(m, http.StatusBadGateway, nil, "")
		}
		chunked = true
	} else if v := rh["Content-Length"]; len(v) > 0 {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || n < 0 {
			pc.Close()
			st.flags = "UPE"
			return lc.localReply(m, http.StatusBadGateway, nil, "")
		}
		cl = n
	}
	noBody := lc.req.Method == "HEAD" || code == http.StatusNoContent || code == http.StatusNotModified
	for _, k := range hopHeaders {
		delete(rh, k)
	}
	delete(rh, "Content-Length")
	if st.wc != nil {
		st.wc.Response.Apply(rh, &st.vars)
	}
	st.route.Response.Apply(rh, &st.vars)
	st.route.VH.Response.Apply(rh, &st.vars)
	st.table.Response.Apply(rh, &st.vars)
	m.filters.EncodeHeaders(&st.fs, code, rh)

	w := lc.bw
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(lc.scr[:0], int64(code), 10))
	w.WriteByte(' ')
	w.WriteString(http.StatusText(code))
	w.WriteString("\r\n")
	if _, ok := rh["Date"]; !ok {
		w.WriteString("Date: ")
		w.Write(leanDate())
		w.WriteString("\r\n")
	}
	for k, vs := range rh {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	keep := !lc.close && !m.draining.Load()
	switch {
	case noBody:
		if cl >= 0 {
			w.WriteString("Content-Length: ")
			w.Write(strconv.AppendInt(lc.scr[:0], cl, 10))
			w.WriteString("\r\n")
		}
		cl = 0
		chunked = false
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case cl >= 0:
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(lc.scr[:0], cl, 10))
		w.WriteString("\r\n")
	default:
		keep, upKeep = false, false // the body ends when the upstream closes
	}
	if !keep {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	var n int64
	var err error
	switch {
	case noBody:
	case chunked:
		n, err = copyChunked(w, pc.R)
	case cl >= 0:
		n, err = io.CopyN(w, pc.R, cl)
	default:
		n, err = io.Copy(w, pc.R)
	}
	if err != nil || !upKeep {
		pc.Close()
	} else {
		c.PutH1(pc)
	}
	if err == nil && !keep {
		err = io.EOF
	}
	return code, n, err
}

// copyChunked copies a chunked body with its framing and trailers; it returns the payload size.
func copyChunked(w *bufio.Writer, r *bufio.Reader) (int64, error) {
	var n int64
	for {
		l, err := r.ReadSlice('\n')
		if err != nil {
			return n, err
		}
		w.Write(l)
		size := bytes.TrimRight(l, "\r\n")
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i]
		}
		sz, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || sz < 0 {
			return n, errBadResponse
		}
		if sz == 0 {
			for { // trailers, then the blank line
				l, err := r.ReadSlice('\n')
				if err != nil {
					return n, err
				}
				w.Write(l)
				if len(bytes.TrimRight(l, "\r\n")) == 0 {
					return n, nil
				}
			}
		}
		if _, err := io.CopyN(w, r, sz); err != nil {
			return n, err
		}
		n += sz
		l, err = r.ReadSlice('\n')
		if err != nil {
			return n, err
		}
		w.Write(l)
		// A chunk boundary is where a streaming answer should reach the client.
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return n, err
			}
		}
	}
}
