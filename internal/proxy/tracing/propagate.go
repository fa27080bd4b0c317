package tracing

import (
	"encoding/hex"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Extract reads the caller's span context from W3C traceparent, else from
// B3 (multi-header or single b3). decided is false when the caller left
// the sampling decision to this proxy (no context, or B3 without a
// sampled flag).
func Extract(h http.Header) (sc trace.SpanContext, decided bool) {
	if tp := h.Get("Traceparent"); tp != "" {
		parts := strings.Split(tp, "-")
		if len(parts) >= 4 && len(parts[0]) == 2 && parts[0] != "ff" {
			tid, err1 := trace.TraceIDFromHex(parts[1])
			sid, err2 := trace.SpanIDFromHex(parts[2])
			fl, err3 := hex.DecodeString(parts[3])
			if err1 == nil && err2 == nil && err3 == nil && len(fl) == 1 {
				return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(fl[0]) & trace.FlagsSampled, Remote: true}), true
			}
		}
	}
	tidHex, sidHex, sampled := h.Get("X-B3-Traceid"), h.Get("X-B3-Spanid"), h.Get("X-B3-Sampled")
	if h.Get("X-B3-Flags") == "1" {
		sampled = "1"
	}
	if single := h.Get("B3"); single != "" && tidHex == "" {
		parts := strings.Split(single, "-")
		switch {
		case len(parts) == 1:
			sampled = parts[0]
		case len(parts) >= 2:
			tidHex, sidHex = parts[0], parts[1]
			if len(parts) >= 3 {
				sampled = parts[2]
			}
		}
	}
	if len(tidHex) == 16 {
		tidHex = strings.Repeat("0", 16) + tidHex
	}
	tid, err1 := trace.TraceIDFromHex(tidHex)
	sid, err2 := trace.SpanIDFromHex(sidHex)
	flags := trace.TraceFlags(0)
	decided = sampled != ""
	if sampled == "1" || sampled == "true" || sampled == "d" {
		flags = trace.FlagsSampled
	}
	if err1 != nil || err2 != nil {
		return trace.SpanContext{}.WithTraceFlags(flags), decided
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true}), decided
}

// Inject writes sc into the headers as traceparent and B3 multi-headers
// (parent is the caller's span, "" when none), replacing what was there.
func Inject(h http.Header, sc trace.SpanContext, parent trace.SpanID) { inject(h, sc, parent) }

// inject is Inject returning the ids in hex. The headers' values share one
// string and one backing array: a request pays two allocations, not ten.
func inject(h http.Header, sc trace.SpanContext, parent trace.SpanID) (tid, sid string) {
	var buf [55]byte // 00-<32 hex>-<16 hex>-<2 hex>
	t, sp := sc.TraceID(), sc.SpanID()
	buf[0], buf[1], buf[2] = '0', '0', '-'
	hex.Encode(buf[3:35], t[:])
	buf[35] = '-'
	hex.Encode(buf[36:52], sp[:])
	buf[52], buf[53], buf[54] = '-', '0', '0'
	sampled := "0"
	if sc.IsSampled() {
		buf[54], sampled = '1', "1"
	}
	tp := string(buf[:])
	tid, sid = tp[3:35], tp[36:52]
	vals := make([]string, 5)
	vals[0], vals[1], vals[2], vals[3] = tp, tid, sid, sampled
	// The keys are canonical already, as http.Header.Set would make them.
	h["Traceparent"] = vals[0:1:1]
	delete(h, "B3")
	h["X-B3-Traceid"] = vals[1:2:2]
	h["X-B3-Spanid"] = vals[2:3:3]
	h["X-B3-Sampled"] = vals[3:4:4]
	if parent.IsValid() {
		vals[4] = parent.String()
		h["X-B3-Parentspanid"] = vals[4:5:5]
	} else {
		delete(h, "X-B3-Parentspanid")
	}
	return tid, sid
}
