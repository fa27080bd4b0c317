package agent

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestWaitUntilReady: `mesh-proxy wait` (the classic layout's postStart
// hook) returns 0 only once the readiness URL answers 200, after the
// attempts that got 503; a URL never ready fails it with 1 naming the
// URL; bad flags are 64.
func TestWaitUntilReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := Main([]string{"wait", "--url", srv.URL, "--periodMillis", "20", "--timeoutSeconds", "30"}, &out, &errb); code != 0 {
		t.Fatalf("wait exit %d, stderr %s", code, errb.String())
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("wait returned after %d requests; want 4 (three 503s, then the 200)", n)
	}

	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer never.Close()
	errb.Reset()
	if code := Main([]string{"wait", "--url", never.URL, "--periodMillis", "50", "--timeoutSeconds", "1"}, &out, &errb); code != 1 {
		t.Errorf("wait on a URL never ready: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), never.URL) || !strings.Contains(errb.String(), "503") {
		t.Errorf("stderr %q; want the URL and its last answer", errb.String())
	}
	if code := Main([]string{"wait", "--periodMillis", "0"}, &out, &errb); code != 64 {
		t.Errorf("--periodMillis 0: exit %d, want 64", code)
	}
}
