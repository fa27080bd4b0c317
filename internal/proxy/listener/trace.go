package listener

import (
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"mesh.dev/mesh/internal/proxy/tracing"
)

// startTrace makes the proxy a hop in the request's trace: with tracing
// configured a span (reported when sampled and a provider is set), else
// headers only (propagateTrace).
func (m *HCM) startTrace(r *http.Request, st *reqState) {
	if m.tracer == nil {
		propagateTrace(r.Header)
		return
	}
	m.tracer.StartInto(&st.spanV, r, time.Now())
	st.span = &st.spanV
}

// endTrace ends the request's span, if it has one.
func (m *HCM) endTrace(r *http.Request, st *reqState, code int, info *Request) {
	if st.span == nil {
		return
	}
	cl := ""
	if st.cluster != nil {
		cl = st.cluster.Name
	}
	flags := st.flags
	if flags == "" {
		flags = "-"
	}
	if st.span.Reported() {
		st.span.End(tracing.OperationName(cl, r.Host), code, flags, cl, st.host, time.Now())
	}
	if info != nil {
		info.TraceID, info.SpanID = st.span.TraceID(), st.span.SpanID()
	}
	st.span = nil
}

// dialCluster connects to a host of a cluster of the current config (the
// tracing provider's collector), through the cluster's transport socket.
func (e *Env) dialCluster(ctx context.Context, name string, h2 bool) (net.Conn, error) {
	c := e.Store.Load().Cluster(name)
	if c == nil {
		return nil, errors.New("cluster " + name + " is not in the proxy's config")
	}
	h, err := c.Pick(0, false, nil, "")
	if err != nil {
		return nil, err
	}
	if h2 {
		return c.DialGRPC(ctx, h)
	}
	return c.DialTCP(ctx, h)
}

func randHex(n int) string {
	var raw [32]byte // ids here are at most 16 bytes; the buffers stay on the stack
	b := raw[:n]
	for i := 0; i < n; i += 8 {
		v := rand.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	var out [64]byte
	hex.Encode(out[:2*n], b)
	return string(out[:2*n])
}

func ensureRequestID(r *http.Request) {
	if r.Header.Get("X-Request-Id") == "" {
		id := randHex(16)
		r.Header.Set("X-Request-Id", id[0:8]+"-"+id[8:12]+"-4"+id[13:16]+"-a"+id[17:20]+"-"+id[20:32])
	}
}

// propagateTrace makes the proxy a hop in the trace: the upstream request gets
// a new span whose parent is the caller's, in both W3C and B3 forms; a request
// that carries neither starts a new, unsampled trace.
func propagateTrace(h http.Header) {
	span := randHex(8)
	tp := h.Get("Traceparent")
	b3 := h.Get("X-B3-Traceid")
	var traceID, flags string
	if parts := strings.Split(tp, "-"); len(parts) == 4 && len(parts[1]) == 32 && len(parts[2]) == 16 {
		traceID, flags = parts[1], parts[3]
		h.Set("Traceparent", "00-"+traceID+"-"+span+"-"+flags)
	}
	if b3 != "" {
		if parent := h.Get("X-B3-Spanid"); parent != "" {
			h.Set("X-B3-Parentspanid", parent)
		}
		h.Set("X-B3-Spanid", span)
		if traceID == "" {
			traceID = strings.Repeat("0", max(0, 32-len(b3))) + b3
			flags = "00"
			if h.Get("X-B3-Sampled") == "1" {
				flags = "01"
			}
			h.Set("Traceparent", "00-"+traceID+"-"+span+"-"+flags)
		}
		return
	}
	if single := h.Get("B3"); single != "" && traceID == "" {
		return // single-header B3 passes through untouched
	}
	if traceID == "" {
		traceID, flags = randHex(16), "00"
		h.Set("Traceparent", "00-"+traceID+"-"+span+"-"+flags)
	}
	h.Set("X-B3-Traceid", traceID)
	h.Set("X-B3-Spanid", span)
	if flags == "01" {
		h.Set("X-B3-Sampled", "1")
	} else {
		h.Set("X-B3-Sampled", "0")
	}
}
