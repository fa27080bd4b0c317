package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/proxy/accesslog"
)

func fileLog(t *testing.T, path string, lf *corev3.SubstitutionFormatString, filter *accesslogv3.AccessLogFilter) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", Filter: filter, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(t, &filev3.FileAccessLog{
		Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: lf}})}}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	accesslog.Flush()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestJSONAccessLogWithCELFilterOnBothPaths: Istio's JSON format with a CEL
// filter logs only what the filter lets through, with the fields a user
// reads (method, path, code, flags, cluster, upstream host, addresses), on
// the lean and the net/http request paths alike.
func TestJSONAccessLogWithCELFilterOnBothPaths(t *testing.T) {
	a := startUpstream(t, "a", nil)
	jf, err := structpb.NewStruct(func() map[string]any {
		m := map[string]any{}
		for k, v := range accesslog.IstioDefaultJSON {
			m[k] = v
		}
		return m
	}())
	if err != nil {
		t.Fatal(err)
	}
	filter := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
		Name: "cel", ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: mustAny(t, &celv3.ExpressionFilter{
			Expression: "response.code >= 400 || request.headers['x-log'] == 'yes'"})}}}}
	for _, noLean := range []bool{false, true} {
		t.Run(fmt.Sprintf("noLean=%v", noLean), func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "access.json")
			port := freePort(t)
			l := inlineListener(t, port, []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{
				{Name: "to-a", Match: prefix("/a"), Action: routeTo("a")}}}})
			h := &hcmv3.HttpConnectionManager{}
			l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(h)
			h.AccessLog = []*accesslogv3.AccessLog{fileLog(t, logPath, &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: jf}}, filter)}
			l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}
			staticProxyPath(t, noLean, []*listenerv3.Listener{l}, staticCluster("a", a))
			waitListening(t, port)

			get(t, url(port, "/a/quiet"))                        // 200: filtered out
			get(t, url(port, "/a/loud?x=1"), "x-log", "yes")     // logged by header
			get(t, url(port, "/nowhere"), "user-agent", "probe") // 404 NR: logged by code
			lines := readLines(t, logPath)
			if len(lines) != 2 {
				t.Fatalf("%d lines, want 2 (the filter keeps the x-log request and the 404):\n%s", len(lines), strings.Join(lines, "\n"))
			}
			var loud, missing map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &loud); err != nil {
				t.Fatalf("line 1 is not JSON: %v\n%s", err, lines[0])
			}
			if err := json.Unmarshal([]byte(lines[1]), &missing); err != nil {
				t.Fatalf("line 2 is not JSON: %v\n%s", err, lines[1])
			}
			if loud["method"] != "GET" || loud["path"] != "/a/loud?x=1" || loud["response_code"] != float64(200) || loud["upstream_cluster"] != "a" ||
				loud["upstream_host"] != a.addr || loud["route_name"] != "to-a" || loud["response_flags"] != "-" || loud["response_code_details"] != "via_upstream" ||
				loud["downstream_local_address"] != fmt.Sprintf("127.0.0.1:%d", port) || !strings.HasPrefix(fmt.Sprint(loud["downstream_remote_address"]), "127.0.0.1:") ||
				loud["bytes_sent"] != float64(1) {
				t.Errorf("logged request: %v", loud)
			}
			if len(fmt.Sprint(loud["request_id"])) != 36 {
				t.Errorf("request_id %v: want the generated UUID", loud["request_id"])
			}
			if missing["response_code"] != float64(404) || missing["response_flags"] != "NR" || missing["user_agent"] != "probe" || missing["upstream_host"] != nil {
				t.Errorf("404 line: %v", missing)
			}
		})
	}
}

// TestTCPProxyAccessLog: a TCP proxy logs one line per connection when it closes, with its bytes and upstream.
func TestTCPProxyAccessLog(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	logPath := filepath.Join(t.TempDir(), "tcp.log")
	port := freePort(t)
	tp := &tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "echo"},
		AccessLog: []*accesslogv3.AccessLog{fileLog(t, logPath, &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
			TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "%PROTOCOL% %RESPONSE_CODE% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %DOWNSTREAM_LOCAL_ADDRESS% %RESPONSE_FLAGS%\n"}}}}, nil)}}
	l := &listenerv3.Listener{Name: "tcp", Address: sockAddr("127.0.0.1", port), FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tp)}}}}}}
	_, ep, _ := net.SplitHostPort(echo.Addr().String())
	var epn uint32
	fmt.Sscan(ep, &epn)
	staticProxyPath(t, false, []*listenerv3.Listener{l}, staticCluster("echo", &upstream{name: "echo", addr: echo.Addr().String()}))
	waitListening(t, port)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "hello")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through the proxy: %q %v", buf, err)
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	c.Close()
	want := fmt.Sprintf("- 0 5 5 echo %s 127.0.0.1:%d -", echo.Addr(), port)
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if lines = readLines(t, logPath); len(lines) >= 2 {
			break
		}
	}
	// waitListening's probe connection is logged first (0 bytes), then ours.
	if len(lines) != 2 || lines[1] != want || !strings.HasPrefix(lines[0], "- 0 0 0 echo ") {
		t.Fatalf("TCP access log %q, want the probe's line and then %q", lines, want)
	}
}

func staticProxyPath(t *testing.T, noLean bool, listeners []*listenerv3.Listener, clusters ...*clusterv3.Cluster) *Proxy {
	t.Helper()
	b := &bootstrapv3.Bootstrap{Node: &corev3.Node{Id: testNode}, StaticResources: &bootstrapv3.Bootstrap_StaticResources{Listeners: listeners, Clusters: clusters}}
	p, err := New(Options{Bootstrap: b, NoLean: noLean})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.Close() })
	return p
}
