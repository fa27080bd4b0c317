package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mesh.dev/mesh/internal/freeport"
)

// freePort is a port on 127.0.0.1 for a server the test starts later.
func freePort(t *testing.T) int {
	return freeport.T(t)
}

var (
	buildMu  sync.Mutex
	builtBin string
)

// buildOnce builds the binary once per test run.
func buildOnce(t *testing.T) string {
	buildMu.Lock()
	defer buildMu.Unlock()
	if builtBin == "" {
		dir, err := os.MkdirTemp("", "mesh-proxy-test")
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "mesh-proxy")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		builtBin = bin
	}
	return builtBin
}

const bootstrapTmpl = `
node: {id: "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local"}
static_resources:
  listeners:
  - name: virtualInbound
    traffic_direction: INBOUND
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

// TestBinaryServesAndDrainsOnSIGTERM runs the real binary: ready on 15021's
// path, then SIGTERM lets an in-flight request finish while new connections
// to the inbound listener are refused (outbound ones go on serving the app
// while it shuts down, #15).
func TestBinaryServesAndDrainsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildOnce(t)
	entered := make(chan struct{}, 1)
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			time.Sleep(700 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	})}
	upLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(upLn)
	defer up.Close()

	port, admin, health, stats := freePort(t), freePort(t), freePort(t), freePort(t)
	bs := filepath.Join(t.TempDir(), "bootstrap.yaml")
	os.WriteFile(bs, []byte(fmt.Sprintf(bootstrapTmpl, port, upLn.Addr().(*net.TCPAddr).Port)), 0o644)
	cmd := exec.Command(bin, "--bootstrap", bs, "--admin-address", fmt.Sprintf("127.0.0.1:%d", admin),
		"--health-address", fmt.Sprintf("127.0.0.1:%d", health), "--stats-address", fmt.Sprintf("127.0.0.1:%d", stats), "--drain-timeout", "5s")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", health))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/slow", port))
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-entered
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted while draining")
	}
	if got := <-result; got != "200 ok" {
		t.Errorf("in-flight request during drain: %s; want 200 ok", got)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mesh-proxy did not exit after draining")
	}
}

func TestBadBootstrapExits65(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildOnce(t)
	bs := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bs, []byte("static_resources: {clusterz: []}\n"), 0o644)
	out, err := exec.Command(bin, "--bootstrap", bs).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 65 || !strings.Contains(string(out), "clusterz") || !strings.Contains(string(out), bs) {
		t.Fatalf("bad bootstrap: %v\n%s\nwant exit 65 naming the file and the field", err, out)
	}
	out, err = exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "mesh-proxy ") {
		t.Fatalf("version: %v %s", err, out)
	}
}

// The CA flags: a contradiction is a usage error, a missing root or token a
// data error naming what is missing.
func TestCAFlagsAreChecked(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildOnce(t)
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--node-id", "sidecar~1.2.3.4~a.b~b.svc.cluster.local", "--xds-address", "127.0.0.1:1", "--xds-mtls"}, 64, "--xds-mtls needs --ca-address"},
		{[]string{"--node-id", "sidecar~1.2.3.4~a.b~b.svc.cluster.local", "--ca-address", "127.0.0.1:1", "--ca-root-cert", filepath.Join(dir, "none.pem")}, 65, "none.pem"},
		{[]string{"--node-id", "sidecar~1.2.3.4~a.b~b.svc.cluster.local", "--ca-address", "127.0.0.1:1", "--workload-cert-ttl", "5s"}, 64, "--workload-cert-ttl"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: %v\n%s\nwant exit %d mentioning %q", c.args, err, out, c.code, c.want)
		}
	}
}
