package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An Envoy-style bootstrap: admin.address, node, a layered_runtime static
// layer turning on a local rate limit through its runtime key.
const envoyBootstrapTmpl = `
node: {id: "from-bootstrap", cluster: "bootstrap-cluster"}
admin:
  access_log_path: /dev/null
  address: {socket_address: {address: 127.0.0.1, port_value: %d}}
stats_config:
  stats_tags: [{tag_name: cluster_name, regex: "^cluster\\.((.+?)\\.)"}]
  stats_matcher: {inclusion_list: {patterns: [{prefix: "rl."}, {prefix: "http.http.downstream_rq_"}]}}
layered_runtime:
  layers:
  - name: static
    static_layer:
      mesh: {test: {ratelimit_enabled: 100}}
static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}
          http_filters:
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: rl
              token_bucket: {max_tokens: 1, fill_interval: 3600s}
              filter_enabled: {default_value: {numerator: 0}, runtime_key: mesh.test.ratelimit_enabled}
              filter_enforced: {default_value: {numerator: 100}}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
`

// mesh-proxy started the way envoy is: -c FILE with Envoy's flags. The
// admin API comes up on the bootstrap's admin.address, the node is the
// bootstrap's with --service-node and --service-cluster applied, a filter
// reads its runtime key from layered_runtime, and SIGTERM drains within
// --drain-time-s.
func TestEnvoyCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildOnce(t)
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	upLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(upLn)
	defer up.Close()
	port, admin := freePort(t), freePort(t)
	bs := filepath.Join(t.TempDir(), "envoy.yaml")
	os.WriteFile(bs, []byte(fmt.Sprintf(envoyBootstrapTmpl, admin, port, upLn.Addr().(*net.TCPAddr).Port)), 0o644)
	cmd := exec.Command(bin, "-c", bs, "--concurrency", "1", "-l", "warning", "--component-log-level", "upstream:error,config:info",
		"--service-node", "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local", "--service-cluster", "app.default",
		"--drain-time-s", "2", "--parent-shutdown-time-s", "3", "--health-address", "", "--stats-address", "")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var info struct {
		Node struct{ ID, Cluster string }
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/server_info", admin))
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&struct {
				Node *struct{ ID, Cluster string } `json:"node"`
			}{&info.Node})
			resp.Body.Close()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin never answered on the bootstrap's admin.address 127.0.0.1:%d: %v; stderr:\n%s", admin, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if info.Node.ID != "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local" || info.Node.Cluster != "app.default" {
		t.Errorf("server_info node %+v; want --service-node and --service-cluster over the bootstrap's", info.Node)
	}
	codes := []int{}
	for i := 0; i < 2; i++ {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != 200 || codes[1] != 429 {
		t.Errorf("two requests through a 1-token bucket the runtime enables: %v; want [200 429]", codes)
	}
	// stats_config.stats_matcher decides which stats the admin API shows.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats", admin))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stats := string(b)
	if !strings.Contains(stats, "rl.http_local_rate_limit.enforced: 1\n") || !strings.Contains(stats, "http.http.downstream_rq_total: 2\n") || strings.Contains(stats, "cluster.") || strings.Contains(stats, "server.") {
		t.Errorf("/stats with an inclusion list of rl. and http.http.downstream_rq_:\n%s", stats)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mesh-proxy did not exit within --parent-shutdown-time-s")
	}
	if !strings.Contains(stderr.String(), "stats_config.stats_tags") {
		t.Errorf("stats_tags are accepted but not carried out, and nothing said so; stderr:\n%s", stderr.String())
	}
}

// --mode validate compiles the bootstrap (with --config-yaml merged over it)
// and says so as Envoy does, without serving: 0 and "OK", or 65 and the reason.
func TestModeValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildOnce(t)
	dir := t.TempDir()
	port, admin := freePort(t), freePort(t)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf(envoyBootstrapTmpl, admin, port, 9)), 0o644)
	out, err := exec.Command(bin, "--mode", "validate", "-c", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration '"+good+"' OK") {
		t.Errorf("valid bootstrap: %v\n%s", err, out)
	}
	// Nothing was bound while validating.
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Errorf("validation left the listener's port taken: %v", err)
	} else {
		ln.Close()
	}
	bad := strings.Replace(fmt.Sprintf(envoyBootstrapTmpl, admin, port, 9), "stat_prefix: rl\n", "stat_prefix: rl\n              local_rate_limit_per_downstream_connection: true\n", 1)
	badPath := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badPath, []byte(bad), 0o644)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a filter setting the proxy cannot carry out", []string{"--mode", "validate", "-c", badPath}, 65, "local_rate_limit_per_downstream_connection"},
		{"an unknown filter merged in by --config-yaml", []string{"--mode", "validate", "--config-path", good, "--config-yaml",
			`static_resources: {listeners: [{name: two, address: {socket_address: {address: 127.0.0.1, port_value: 1}}, filter_chains: [{filters: [{name: envoy.filters.network.http_connection_manager, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: two, route_config: {}, http_filters: [{name: acme.magic, typed_config: {"@type": type.googleapis.com/google.protobuf.Struct, value: {}}}, {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]}}]}]}]}`},
			65, "(acme.magic): HTTP filter type \"type.googleapis.com/google.protobuf.Struct\" is not supported"},
		{"an unknown mode", []string{"--mode", "init_only", "-c", good}, 64, "--mode"},
		{"parent shutdown before drain", []string{"-c", good, "--drain-time-s", "5", "--parent-shutdown-time-s", "1"}, 64, "--parent-shutdown-time-s"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: %v\n%s\nwant exit %d mentioning %q", c.name, err, out, c.code, c.want)
		}
	}
	// --config-yaml alone is a whole bootstrap.
	out, err = exec.Command(bin, "--mode", "validate", "--config-yaml", `node: {id: x}`).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration '--config-yaml' OK") {
		t.Errorf("--config-yaml alone: %v\n%s", err, out)
	}
}
