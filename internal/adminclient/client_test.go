package adminclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSplitPodName(t *testing.T) {
	for in, want := range map[string][2]string{
		"reviews-v1-abc.default": {"reviews-v1-abc", "default"},
		"reviews-v1-abc":         {"reviews-v1-abc", ""},
		"a.b.c":                  {"a.b", "c"},
		"trailing.":              {"trailing.", ""},
	} {
		n, ns := SplitPodName(in)
		if n != want[0] || ns != want[1] {
			t.Errorf("%s: %q %q", in, n, ns)
		}
	}
}

func TestNewRejectsBadAddresses(t *testing.T) {
	for _, a := range []string{"", "ftp://127.0.0.1:1", "http://"} {
		if _, err := New(a); err == nil {
			t.Errorf("%q accepted", a)
		}
	}
	c, err := New("127.0.0.1:15000")
	if err != nil || c.Address() != "127.0.0.1:15000" {
		t.Errorf("host:port: %v %v", c, err)
	}
}

func TestParseLoggers(t *testing.T) {
	got := ParseLoggers([]byte("active loggers:\n  admin: info\n  http: debug\nnot a logger line\n"))
	if len(got) != 2 || got["admin"] != "info" || got["http"] != "debug" {
		t.Errorf("%v", got)
	}
}

func TestHTTPErrorsAndQueries(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		if r.URL.Path == "/config_dump" {
			http.Error(w, "dump failed", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("active loggers:\n  admin: warning\n"))
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ConfigDump(context.Background(), true)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "dump failed") {
		t.Errorf("non-2xx: %v", err)
	}
	if _, err := c.SetLogLevel(context.Background(), "", "debug"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetLogLevel(context.Background(), "http", "trace"); err != nil {
		t.Fatal(err)
	}
	want := []string{"GET /config_dump?include_eds=", "POST /logging?level=debug", "POST /logging?http=trace"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("requests: %q", seen)
	}
}
