package pilotinterop

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/telemetry"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/accesslog"
)

// TestAccessLogsThroughTwoSidecars: with the mesh config asking for JSON
// access logs, one request from productpage to reviews through both
// sidecars (pilot's config over real ADS streams, mesh mTLS between them)
// writes one line on each side: the client's naming the outbound cluster
// and the server's the inbound one, with the same request id. A Telemetry
// turning off reviews' server-side logs leaves the client's line only.
func TestAccessLogsThroughTwoSidecars(t *testing.T) {
	for _, tc := range []struct {
		name      string
		telemetry string
		want      []string // upstream cluster prefixes, client side first
	}{
		{"mesh config", "", []string{"outbound|9080||reviews.default.svc.cluster.local", "inbound|9080||"}},
		{"server side disabled", `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-quiet, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging: [{match: {mode: SERVER}, disabled: true}]
`, []string{"outbound|9080||reviews.default.svc.cluster.local"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "access.log")
			w, _ := world(t)
			mc, err := telemetry.ParseMesh([]byte("accessLogFile: "+logPath+"\naccessLogEncoding: JSON\n"), "mesh")
			if err != nil {
				t.Fatal(err)
			}
			w.In.Mesh = mc
			if tc.telemetry != "" {
				if err := w.AddYAML([]byte(tc.telemetry)); err != nil {
					t.Fatal(err)
				}
			}
			pc := pushContext(w)
			authority, err := ca.NewSelfSigned("mesh", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			server := startInboundTo(t, w, pc, "reviews-v1", authority, newApp(t))
			go func() {
				for {
					select {
					case server.dst <- netip.AddrPortFrom(server.podIP, 9080):
					case <-t.Context().Done():
						return
					}
				}
			}()
			client := startOutbound(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"), authority, "reviews.default.svc.cluster.local:9080", server)

			status, body := get(t, client.addr, "reviews:9080", "/reviews/1")
			if status != 200 || !strings.Contains(body, "app saw /reviews/1") {
				t.Fatalf("through the sidecars: %d %q", status, body)
			}
			lines := readLog(t, logPath, len(tc.want))
			var ids []string
			for i, want := range tc.want {
				l := lines[i]
				if !strings.HasPrefix(str(l["upstream_cluster"]), want) {
					t.Errorf("line %d upstream_cluster %q, want %s...; line %v", i+1, l["upstream_cluster"], want, l)
				}
				if str(l["method"]) != "GET" || str(l["path"]) != "/reviews/1" || l["response_code"] != float64(200) || str(l["authority"]) != "reviews:9080" {
					t.Errorf("line %d: %v; want GET /reviews/1 200 for reviews:9080", i+1, l)
				}
				ids = append(ids, str(l["request_id"]))
			}
			if ids[0] == "" || (len(ids) == 2 && ids[0] != ids[1]) {
				t.Errorf("request ids %q: want one id, set by the client sidecar and seen by the server's", ids)
			}
		})
	}
}

func str(v any) string { s, _ := v.(string); return s }

func get(t *testing.T, addr, host, path string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("GET", "http://"+host+path, nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// readLog flushes the proxies' buffered access logs and parses the file's
// JSON lines, client side first (the server's line is written first, when
// its response is done; the client's after it), expecting n of them.
func readLog(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	var lines []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for {
		accesslog.Flush()
		data, _ := os.ReadFile(path)
		lines = lines[:0]
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if l == "" {
				continue
			}
			m := map[string]any{}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("access log line is not JSON: %v: %q", err, l)
			}
			lines = append(lines, m)
		}
		if len(lines) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(lines) != n {
		t.Fatalf("access log has %d lines, want %d: %v", len(lines), n, lines)
	}
	// Order by side: the outbound line first.
	if n == 2 && strings.HasPrefix(str(lines[0]["upstream_cluster"]), "inbound") {
		lines[0], lines[1] = lines[1], lines[0]
	}
	return lines
}

// TestAccessLogShowsIPv4Peers: the sidecar's capture listener bound on
// 0.0.0.0, as pilot writes it (a Go listener on the IPv4 wildcard is
// dual-stack), logs IPv4 peers as Envoy does: downstream_remote_address
// and downstream_local_address are a.b.c.d:port, never ::ffff:a.b.c.d, in
// the JSON log and in Istio's default text line; and the gRPC
// authorization service is told the same source address.
func TestAccessLogShowsIPv4Peers(t *testing.T) {
	for _, enc := range []string{"JSON", "TEXT"} {
		t.Run(enc, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "access.log")
			w := authzWorld(t, "grpc-authz", false)
			mc, err := telemetry.ParseMesh([]byte("accessLogFile: "+logPath+"\naccessLogEncoding: "+enc+"\n"), "mesh")
			if err != nil {
				t.Fatal(err)
			}
			mc.ExtensionProviders = w.In.Mesh.ExtensionProviders
			w.In.Mesh = mc
			authority, err := ca.NewSelfSigned("mesh", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			seen := make(chan string, 4)
			a := &failingAuthz{seen: seen}
			a.start(t)
			t.Cleanup(a.stop)
			h := startInboundOpts(t, w, pushContext(w), "reviews-v1", authority, userApp(t), inboundOpts{anyAddr: true,
				endpoints: map[string]netip.AddrPort{xds.OutboundClusterName(authzGRPCPort, "", authzHost): a.addr}})
			if got := h.ask(t, "/reviews/1", "alice"); got.code != 200 {
				t.Fatalf("GET /reviews/1: %d %q", got.code, got.body)
			}
			if src := <-seen; !isIPv4Port(src) {
				t.Errorf("CheckRequest source address %q; want a.b.c.d:port", src)
			}
			accesslog.Flush()
			var remote, local string
			deadline := time.Now().Add(10 * time.Second)
			for remote == "" && time.Now().Before(deadline) {
				accesslog.Flush()
				data, _ := os.ReadFile(logPath)
				line := strings.TrimSpace(string(data))
				switch {
				case line == "":
					time.Sleep(20 * time.Millisecond)
					continue
				case enc == "JSON":
					m := map[string]any{}
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("access log line is not JSON: %v: %q", err, line)
					}
					remote, local = str(m["downstream_remote_address"]), str(m["downstream_local_address"])
				default:
					// Istio's default format ends "... %UPSTREAM_HOST% %UPSTREAM_LOCAL_ADDRESS%
					// %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%".
					f := strings.Fields(line)
					if len(f) < 6 {
						t.Fatalf("access log line %q: want Istio's default format", line)
					}
					local, remote = f[len(f)-4], f[len(f)-3]
				}
				if !isIPv4Port(remote) || !isIPv4Port(local) {
					t.Errorf("access log line %q: downstream remote %q, local %q; want a.b.c.d:port", line, remote, local)
				}
			}
			if remote == "" {
				t.Fatal("no access log line")
			}
		})
	}
}

func isIPv4Port(s string) bool {
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Addr().Is4()
}
