package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestPathWithEscapedSlashesActions: the HCM settings Istio never writes
// but Envoy honours. REJECT_REQUEST answers 400 and UNESCAPE_AND_REDIRECT
// 307 to the unescaped, normalized path (both counted in the admin stats);
// a path without escaped slashes is normalized and forwarded. Requests
// start on the lean path, which hands the refused ones to net/http.
func TestPathWithEscapedSlashesActions(t *testing.T) {
	up := startUpstream(t, "app", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RequestURI) })
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("app")}}}}
	for _, tc := range []struct {
		action         hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
		target         string
		code           int
		location, body string
		stat           string
	}{
		{hcmv3.HttpConnectionManager_REJECT_REQUEST, "/a%2Fb", 400, "", "", "downstream_rq_failed_path_normalization"},
		{hcmv3.HttpConnectionManager_REJECT_REQUEST, "/a/./b//c", 200, "", "/a/b/c", ""},
		{hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, "/x/..%2f%2Fa%5cb?q=1", 307, "/a/b?q=1", "", "downstream_rq_redirected_with_normalized_path"},
		{hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, "/a/b?q=1", 200, "", "/a/b?q=1", ""},
		{hcmv3.HttpConnectionManager_KEEP_UNCHANGED, "/a%2Fb/../c", 200, "", "/c", ""},
	} {
		t.Run(tc.action.String()+" "+tc.target, func(t *testing.T) {
			port := freePort(t)
			l := inlineListener(t, port, vhs)
			hcmWith(t, l, func(h *hcmv3.HttpConnectionManager) {
				h.NormalizePath, h.MergeSlashes, h.PathWithEscapedSlashesAction = wrapperspb.Bool(true), true, tc.action
			})
			p := staticProxy(t, []*listenerv3.Listener{l}, staticCluster("app", up))
			waitListening(t, port)
			code, hdr, body := rawRequest(t, port, tc.target)
			if code != tc.code || hdr.Get("Location") != tc.location || tc.code == 200 && body != tc.body {
				t.Errorf("GET %s: %d Location %q body %q; want %d %q %q", tc.target, code, hdr.Get("Location"), body, tc.code, tc.location, tc.body)
			}
			if tc.stat != "" {
				_, stats := get(t, "http://"+p.AdminAddr()+"/stats")
				if !strings.Contains(stats, "http.test."+tc.stat+": 1") {
					t.Errorf("admin /stats has no http.test.%s: 1:\n%s", tc.stat, stats)
				}
			}
		})
	}
}

// hcmWith edits the HTTP connection manager of a listener built by inlineListener.
func hcmWith(t *testing.T, l *listenerv3.Listener, edit func(*hcmv3.HttpConnectionManager)) {
	t.Helper()
	f := l.FilterChains[0].Filters[0]
	h := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}
}

// rawRequest sends GET target as written (no client library re-encodes it).
func rawRequest(t *testing.T, port uint32, target string) (int, http.Header, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
