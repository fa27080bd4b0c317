package tracing

import (
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       map[string]string
		trace   string
		span    string
		sampled bool
		decided bool
	}{
		{"none", nil, "00000000000000000000000000000000", "0000000000000000", false, false},
		{"traceparent sampled", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true, true},
		{"traceparent unsampled", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false, true},
		{"b3 64-bit trace id", map[string]string{"x-b3-traceid": "a3ce929d0e0e4736", "x-b3-spanid": "00f067aa0ba902b7", "x-b3-sampled": "1"}, "0000000000000000a3ce929d0e0e4736", "00f067aa0ba902b7", true, true},
		{"b3 without decision", map[string]string{"x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736", "x-b3-spanid": "00f067aa0ba902b7"}, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false, false},
		{"b3 single", map[string]string{"b3": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"}, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true, true},
		{"b3 single deny", map[string]string{"b3": "0"}, "00000000000000000000000000000000", "0000000000000000", false, true},
		{"bad traceparent falls back to b3", map[string]string{"traceparent": "zz", "x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736", "x-b3-spanid": "00f067aa0ba902b7", "x-b3-sampled": "0"}, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false, true},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		sc, decided := Extract(h)
		if sc.TraceID().String() != tc.trace || sc.SpanID().String() != tc.span || sc.IsSampled() != tc.sampled || decided != tc.decided {
			t.Errorf("%s: got %s %s sampled=%v decided=%v", tc.name, sc.TraceID(), sc.SpanID(), sc.IsSampled(), decided)
		}
	}
}

// TestInjectRoundTrips: what Inject writes, Extract reads back, in both forms.
func TestInjectRoundTrips(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: randTraceID(), SpanID: randSpanID(), TraceFlags: trace.FlagsSampled})
	h := http.Header{"B3": {"stale"}}
	Inject(h, sc, randSpanID())
	got, decided := Extract(h)
	if !decided || got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() {
		t.Fatalf("traceparent round trip: %v", h)
	}
	h.Del("Traceparent")
	if got, _ := Extract(h); got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() || h.Get("B3") != "" {
		t.Fatalf("b3 round trip: %v", h)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "", "")
	f.Add("", "a3ce929d0e0e4736", "00f067aa0ba902b7", "")
	f.Add("", "", "", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d-00f067aa0ba902b7")
	f.Fuzz(func(t *testing.T, tp, tid, sid, b3 string) {
		h := http.Header{}
		h.Set("traceparent", tp)
		h.Set("x-b3-traceid", tid)
		h.Set("x-b3-spanid", sid)
		h.Set("b3", b3)
		sc, _ := Extract(h)
		if sc.IsValid() {
			out := http.Header{}
			Inject(out, sc, trace.SpanID{})
			if got, _ := Extract(out); got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() {
				t.Fatalf("round trip of %v lost the context", sc)
			}
		}
	})
}
