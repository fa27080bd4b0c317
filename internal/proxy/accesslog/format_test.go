package accesslog

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

type metaMap map[string]any

func (m metaMap) Get(ns string) any { return m[ns] }

func sampleEntry() *Entry {
	return &Entry{
		Start: time.Date(2026, 12, 3, 21, 4, 5, 678_000_000, time.UTC), Duration: 42 * time.Millisecond,
		Method: "GET", Path: "/orders?id=1", Host: "orders.shop", Protocol: "HTTP/1.1", Status: 503, Flags: "UF",
		Cluster: "outbound|80||orders.shop.svc.cluster.local", UpstreamHost: "198.18.0.7:8080", Route: "default",
		BytesIn: 12, BytesOut: 345, Remote: "198.18.0.5:41234", Local: "198.19.0.10:80", SNI: "orders.shop",
		Principal:  "spiffe://cluster.local/ns/shop/sa/web",
		Header:     http.Header{"User-Agent": {"curl/8"}, "X-Request-Id": {"req-1"}, "X-Envoy-Original-Path": {"/v1/orders"}},
		RespHeader: http.Header{"X-Envoy-Upstream-Service-Time": {"40"}},
		Meta:       metaMap{"envoy.common": map[string]any{"access_log_hint": true}, "mesh.audit": "AUDIT"},
	}
}

func TestTextFormatOperators(t *testing.T) {
	cases := []struct{ format, want string }{
		{"%START_TIME%", "2026-12-03T21:04:05.678Z"},
		{"%START_TIME(%Y/%m/%d %H:%M:%S.%3f %s)%", "2026/12/03 21:04:05.678 1796331845"},
		{"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%", "GET /v1/orders HTTP/1.1"},
		{"%REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(X-MISSING)%", "/orders?id=1 orders.shop -"},
		{"%REQ(USER-AGENT):3%", "cur"},
		{"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%", "40 503 UF upstream_reset_before_response_started{connection_failure}"},
		{"%BYTES_RECEIVED% %BYTES_SENT% %DURATION%", "12 345 42"},
		{"%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS%", "198.18.0.7:8080 outbound|80||orders.shop.svc.cluster.local -"},
		{"%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_PORT%", "198.18.0.5:41234 198.18.0.5 198.19.0.10:80 80"},
		{"%DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_PEER_SUBJECT% %REQUESTED_SERVER_NAME% %ROUTE_NAME%", "spiffe://cluster.local/ns/shop/sa/web - orders.shop default"},
		{"%DYNAMIC_METADATA(envoy.common:access_log_hint)% %FILTER_STATE(mesh.audit:PLAIN)% %DYNAMIC_METADATA(nope)%", "true AUDIT -"},
		{"100%% done", "100% done"},
	}
	e := sampleEntry()
	for _, c := range cases {
		f, err := ParseText(c.format, "f")
		if err != nil {
			t.Errorf("%q: %v", c.format, err)
			continue
		}
		if got := string(f.Append(nil, e)); got != c.want {
			t.Errorf("%q\n got %q\nwant %q", c.format, got, c.want)
		}
	}
}

func TestIstioDefaultTextForHTTPAndTCP(t *testing.T) {
	f, err := ParseText(IstioDefault, "f")
	if err != nil {
		t.Fatal(err)
	}
	got := string(f.Append(nil, sampleEntry()))
	want := `[2026-12-03T21:04:05.678Z] "GET /v1/orders HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure} - "-" 12 345 42 40 "-" "curl/8" "req-1" "orders.shop" "198.18.0.7:8080" outbound|80||orders.shop.svc.cluster.local - 198.19.0.10:80 198.18.0.5:41234 orders.shop default` + "\n"
	if got != want {
		t.Errorf("HTTP line\n got %s\nwant %s", got, want)
	}
	tcp := &Entry{Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Protocol: "TCP", Flags: "-", BytesIn: 10, BytesOut: 20,
		Cluster: "outbound|5432||db", UpstreamHost: "198.18.0.9:5432", UpstreamLocal: "198.18.0.5:50000", Remote: "198.18.0.5:40000", Local: "198.19.0.3:5432"}
	got = string(f.Append(nil, tcp))
	want = `[2026-01-02T03:04:05.000Z] "- - -" 0 - - - "-" 10 20 0 - "-" "-" "-" "-" "198.18.0.9:5432" outbound|5432||db 198.18.0.5:50000 198.19.0.3:5432 198.18.0.5:40000 - -` + "\n"
	if got != want {
		t.Errorf("TCP line\n got %s\nwant %s", got, want)
	}
}

func TestJSONFormatKeepsTypes(t *testing.T) {
	f, err := ParseJSONMap(IstioDefaultJSON, "f")
	if err != nil {
		t.Fatal(err)
	}
	line := f.Append(nil, sampleEntry())
	if line[len(line)-1] != '\n' {
		t.Fatalf("JSON line does not end in a newline: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	if m["response_code"] != float64(503) || m["bytes_sent"] != float64(345) || m["duration"] != float64(42) {
		t.Errorf("numbers: %v %v %v", m["response_code"], m["bytes_sent"], m["duration"])
	}
	if m["upstream_local_address"] != nil || m["x_forwarded_for"] != nil {
		t.Errorf("absent values are null: %v %v", m["upstream_local_address"], m["x_forwarded_for"])
	}
	if m["path"] != "/v1/orders" || m["upstream_cluster"] != "outbound|80||orders.shop.svc.cluster.local" || m["start_time"] != "2026-12-03T21:04:05.678Z" {
		t.Errorf("strings: %v", m)
	}
	if len(m) != len(IstioDefaultJSON) {
		t.Errorf("%d keys, want %d", len(m), len(IstioDefaultJSON))
	}
	// A value mixing text and operators is a string; odd characters are escaped.
	f, err = ParseJSONMap(map[string]string{"msg": "code=%RESPONSE_CODE% ua=%REQ(USER-AGENT)%", "audit": "%DYNAMIC_METADATA(envoy.common)%"}, "f")
	if err != nil {
		t.Fatal(err)
	}
	e := sampleEntry()
	e.Header.Set("User-Agent", "a\"b\\c\n\x01")
	m = nil
	if err := json.Unmarshal(f.Append(nil, e), &m); err != nil {
		t.Fatal(err)
	}
	if m["msg"] != "code=503 ua=a\"b\\c\n\x01" {
		t.Errorf("msg = %q", m["msg"])
	}
	if a, ok := m["audit"].(map[string]any); !ok || a["access_log_hint"] != true {
		t.Errorf("metadata object = %v", m["audit"])
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	for format, want := range map[string]string{
		"%BOGUS%":             "%BOGUS% is not supported",
		"%REQ(:METHOD)":       "not closed",
		"%REQ(:METHOD%":       "no closing ')'",
		"100% done":           "starts no command operator",
		"%REQ()%":             "needs a header name",
		"%DURATION(x)%":       "takes no argument",
		"%REQ(A?B?C)%":        "at most one alternative",
		"%START_TIME(%Q)%":    "%Q is not a supported time conversion",
		"%REQ(USER-AGENT):0%": "positive number",
		"%REQ(USER-AGENT):%":  "followed by a length",
	} {
		_, err := ParseText(format, "access_log[0].format")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "access_log[0].format") {
			t.Errorf("%q: error %v; want one naming the field and containing %q", format, err, want)
		}
	}
}
