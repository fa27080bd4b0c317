package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"mesh.dev/mesh/internal/proxy/accesslog"
)

func TestAccessLogAndTracePropagation(t *testing.T) {
	a := startUpstream(t, "a", nil)
	port := freePort(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	l := inlineListener(t, port, []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}}})
	h := &hcmv3.HttpConnectionManager{}
	l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(h)
	h.AccessLog = []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(t, &filev3.FileAccessLog{
		Path: logPath,
		AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
			TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %REQ(X-REQUEST-ID)%\n"}}}}},
	})}}}
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}
	staticProxy(t, []*listenerv3.Listener{l}, staticCluster("a", a))

	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, _ := get(t, url(port, "/orders?id=1"), "traceparent", "00-"+trace+"-00f067aa0ba902b7-01", "x-request-id", "req-1")
	tp := resp.Header.Get("X-Req-Traceparent")
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != trace || parts[2] == "00f067aa0ba902b7" || parts[3] != "01" {
		t.Errorf("traceparent upstream %q: want the same trace, a new span id, sampled flag kept", tp)
	}
	if resp.Header.Get("X-Req-X-B3-Traceid") != trace || resp.Header.Get("X-Req-X-B3-Spanid") != parts[len(parts)-2] || resp.Header.Get("X-Req-X-B3-Sampled") != "1" {
		t.Errorf("B3 headers upstream: traceid %q spanid %q sampled %q; want them to mirror traceparent",
			resp.Header.Get("X-Req-X-B3-Traceid"), resp.Header.Get("X-Req-X-B3-Spanid"), resp.Header.Get("X-Req-X-B3-Sampled"))
	}
	// B3 only: the span moves on and the old span becomes the parent.
	resp, _ = get(t, url(port, "/"), "x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid", "e457b5a2e4d86bd1", "x-b3-sampled", "1")
	if resp.Header.Get("X-Req-X-B3-Parentspanid") != "e457b5a2e4d86bd1" || resp.Header.Get("X-Req-X-B3-Spanid") == "e457b5a2e4d86bd1" ||
		!strings.Contains(resp.Header.Get("X-Req-Traceparent"), "80f198ee56343ba864fe8b2a57d3eff7") {
		t.Errorf("B3 propagation: parent %q span %q traceparent %q", resp.Header.Get("X-Req-X-B3-Parentspanid"), resp.Header.Get("X-Req-X-B3-Spanid"), resp.Header.Get("X-Req-Traceparent"))
	}
	// No request id: the proxy makes one and the upstream sees it.
	resp, _ = get(t, url(port, "/"))
	if len(resp.Header.Get("X-Req-X-Request-Id")) != 36 {
		t.Errorf("generated x-request-id %q; want a UUID", resp.Header.Get("X-Req-X-Request-Id"))
	}
	accesslog.Flush()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "GET /orders?id=1 200 a req-1\n") {
		t.Fatalf("access log:\n%s", b)
	}
}

func TestNodeID(t *testing.T) {
	id, err := NodeID("198.18.0.7", "reviews-v1-5b4d7c9f8-abcde", "bookinfo")
	if err != nil || id != "sidecar~198.18.0.7~reviews-v1-5b4d7c9f8-abcde.bookinfo~bookinfo.svc.cluster.local" {
		t.Fatalf("NodeID = %q, %v", id, err)
	}
	if _, err := NodeID("not-an-ip", "p", "ns"); err == nil || !strings.Contains(err.Error(), "not-an-ip") {
		t.Fatalf("bad IP: %v", err)
	}
	if _, _, _, _, err := ParseNodeID("sidecar~1.2.3.4~p"); err == nil {
		t.Fatal("a three-part id parsed")
	}
	if w := workloadName("reviews-v1-5b4d7c9f8-abcde"); w != "reviews-v1" {
		t.Fatalf("workload of a Deployment pod = %q, want reviews-v1", w)
	}
}
