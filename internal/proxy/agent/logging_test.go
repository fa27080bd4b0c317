package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/proxy/logging"
)

// syncBuffer is a log sink safe for the proxy's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLoggingPerLogger sets one logger to debug through the admin API (with
// the client `mesh proxy-config log --level filter:debug` uses) and checks
// that the tcp_proxy filter's debug record appears only then, while the
// other loggers keep their level.
func TestLoggingPerLogger(t *testing.T) {
	logs := &syncBuffer{}
	logging.Default.SetAll(logging.Info)
	logging.Default.SetOutput(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	t.Cleanup(func() { logging.Default.SetOutput(nil); logging.Default.SetAll(logging.Info) })

	port := freePort(t)
	tp := &tcpv3.TcpProxy{StatPrefix: "dead", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "dead"}}
	l := &listenerv3.Listener{Name: "tcp", Address: sockAddr("127.0.0.1", port), FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tp)}}}}}}
	p := staticProxy(t, []*listenerv3.Listener{l}, staticCluster("dead", &upstream{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}))

	// A connection whose upstream refuses: the proxy closes it after logging at debug on "filter".
	refused := func() {
		t.Helper()
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("waiting for the proxy to close: %v", err)
		}
	}
	const msg = "tcp proxy: upstream connect failed"
	refused()
	if strings.Contains(logs.String(), msg) {
		t.Fatalf("debug record logged with every logger at info:\n%s", logs)
	}

	ctx := context.Background()
	ac, err := adminclient.New(p.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	levels, err := ac.SetLogLevel(ctx, "filter", "debug")
	if err != nil {
		t.Fatal(err)
	}
	if levels["filter"] != "debug" || levels["http"] != "info" || levels["conn_handler"] != "info" {
		t.Fatalf("after ?filter=debug: %v; want filter debug, the others info", levels)
	}
	refused()
	if out := logs.String(); !strings.Contains(out, msg) || !strings.Contains(out, "logger=filter") {
		t.Fatalf("no debug record from the filter logger after ?filter=debug:\n%s", out)
	}

	// GET lists the loggers, the Envoy way.
	code, body := adminGet(t, p, "/logging")
	if code != 200 || !strings.HasPrefix(body, "active loggers:\n") || !strings.Contains(body, "\n  filter: debug\n") || !strings.Contains(body, "\n  router: info\n") {
		t.Fatalf("GET /logging: %d\n%s", code, body)
	}

	// ?level= sets every logger; a later ?LOGGER= changes one.
	if levels, err = ac.SetLogLevel(ctx, "", "warning"); err != nil || levels["filter"] != "warning" || levels["upstream"] != "warning" {
		t.Fatalf("after ?level=warning: %v %v", levels, err)
	}
	if levels, err = ac.SetLogLevel(ctx, "router", "trace"); err != nil || levels["router"] != "trace" || levels["http"] != "warning" {
		t.Fatalf("after ?router=trace: %v %v", levels, err)
	}

	// Bad requests change nothing and say why.
	post := func(q string) (int, string) {
		resp, err := client.Post("http://"+p.AdminAddr()+"/logging?"+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for q, want := range map[string]string{
		"nosuch=debug":            `unknown logger "nosuch"`,
		"http=loud":               `unknown level "loud"`,
		"http=debug&nosuch=debug": `unknown logger "nosuch"`,
	} {
		if code, body := post(q); code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("POST /logging?%s: %d %q; want 400 saying %s", q, code, body, want)
		}
	}
	if code, _ := adminGet(t, p, "/logging?http=debug"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /logging?http=debug: %d; want 405 (changes need POST)", code)
	}
	if levels, _ := ac.Loggers(ctx); levels["http"] != "warning" {
		t.Errorf("http is %q after rejected requests; want warning unchanged", levels["http"])
	}
}

func TestLogLevelFlags(t *testing.T) {
	r := logging.NewRegistry(logging.Info)
	if err := setLogLevels(r, "warning", "upstream:debug, connection:trace"); err != nil {
		t.Fatal(err)
	}
	got := r.Levels()
	if got["upstream"] != logging.Debug || got["connection"] != logging.Trace || got["http"] != logging.Warning {
		t.Errorf("levels %v; want upstream debug, connection trace, the rest warning", got)
	}
	for flags, want := range map[[2]string]string{
		{"loud", ""}:              `--log-level: unknown level "loud"`,
		{"info", "upstream"}:      `--component-log-level "upstream": "upstream" is not LOGGER:LEVEL`,
		{"info", "upsteam:debug"}: `unknown logger "upsteam"`,
		{"info", "upstream:x"}:    `logger upstream: unknown level "x"`,
	} {
		if err := setLogLevels(logging.NewRegistry(logging.Info), flags[0], flags[1]); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--log-level %q --component-log-level %q: error %v; want %s", flags[0], flags[1], err, want)
		}
	}
}
