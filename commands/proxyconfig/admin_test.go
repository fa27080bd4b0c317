package proxyconfig

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// adminServer serves an Envoy-style admin API on a loopback socket: the
// fixture as /config_dump, a /clusters answer and mutable log levels.
type adminServer struct {
	*httptest.Server
	mu        sync.Mutex
	levels    map[string]string
	dumpQuery []string
}

func newAdminServer(t *testing.T, dumpFile string) *adminServer {
	t.Helper()
	dump, err := os.ReadFile(dumpFile)
	if err != nil {
		t.Fatal(err)
	}
	clusters, err := protojson.Marshal(&adminv3.Clusters{ClusterStatuses: []*adminv3.ClusterStatus{{
		Name: "outbound|9080||reviews.default.svc.cluster.local",
		HostStatuses: []*adminv3.HostStatus{
			hostStatus("198.18.0.11", 9080, corev3.HealthStatus_HEALTHY, false),
			hostStatus("198.18.0.12", 9080, corev3.HealthStatus_HEALTHY, true),
			hostStatus("198.18.0.13", 9080, corev3.HealthStatus_DRAINING, false),
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	a := &adminServer{levels: map[string]string{"admin": "info", "http": "info", "router": "warning"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.dumpQuery = append(a.dumpQuery, r.URL.RawQuery)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(dump)
	})
	mux.HandleFunc("/clusters", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") != "json" {
			fmt.Fprintln(w, "text format not served by this test server")
			return
		}
		w.Write(clusters)
	})
	mux.HandleFunc("/logging", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			// As Envoy does for endpoints that change state.
			http.Error(w, "This command requires POST", http.StatusMethodNotAllowed)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		for k, v := range r.URL.Query() {
			if k == "level" {
				for n := range a.levels {
					a.levels[n] = v[0]
				}
				continue
			}
			if _, ok := a.levels[k]; !ok {
				http.Error(w, "error: unknown logger name", http.StatusNotFound)
				return
			}
			a.levels[k] = v[0]
		}
		var names []string
		for n := range a.levels {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintln(w, "active loggers:")
		for _, n := range names {
			fmt.Fprintf(w, "  %s: %s\n", n, a.levels[n])
		}
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

func hostStatus(ip string, port uint32, health corev3.HealthStatus, outlier bool) *adminv3.HostStatus {
	return &adminv3.HostStatus{
		Address:      &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
		HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: health, FailedOutlierCheck: outlier},
	}
}

func (a *adminServer) addr() string { return strings.TrimPrefix(a.URL, "http://") }

func TestAdminAddressMatchesFile(t *testing.T) {
	sidecar := fixturePath(t, "sidecar-config-dump.json")
	a := newAdminServer(t, sidecar)
	for _, sub := range []string{"cluster", "listener", "route", "secret", "bootstrap"} {
		live, _, err := run(t, "", sub, "--admin-address", a.addr())
		if err != nil {
			t.Fatalf("%s: %v", sub, err)
		}
		saved, _, err := run(t, "", sub, "-f", sidecar)
		if err != nil {
			t.Fatal(err)
		}
		if live != saved {
			t.Errorf("%s over the admin API differs from the same dump read from a file:\n%s\n---\n%s", sub, live, saved)
		}
	}
}

func TestEndpointsUseLiveHealth(t *testing.T) {
	a := newAdminServer(t, fixturePath(t, "sidecar-config-dump.json"))
	out, _, err := run(t, "", "endpoint", "--admin-address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "admin-endpoint.txt", out)
	for _, want := range []string{"198.18.0.12:9080", "FAILED"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, "", "endpoint", "--admin-address", a.addr(), "--status", "draining")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "198.18.0.13:9080") {
		t.Errorf("--status draining:\n%s", out)
	}
	if len(a.dumpQuery) == 0 || !strings.Contains(a.dumpQuery[0], "include_eds") {
		t.Errorf("endpoint must ask /config_dump for EDS, queries: %q", a.dumpQuery)
	}
}

func TestLogLevels(t *testing.T) {
	a := newAdminServer(t, fixturePath(t, "sidecar-config-dump.json"))
	out, _, err := run(t, "", "log", "--admin-address", a.addr())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "router   warning") {
		t.Errorf("levels:\n%s", out)
	}
	out, _, err = run(t, "", "log", "--admin-address", a.addr(), "--level", "http:debug,router:trace")
	if err != nil {
		t.Fatal(err)
	}
	if a.levels["http"] != "debug" || a.levels["router"] != "trace" || a.levels["admin"] != "info" {
		t.Errorf("server levels after set: %v", a.levels)
	}
	if !strings.Contains(out, "http     debug") {
		t.Errorf("printed levels after set:\n%s", out)
	}
	if _, _, err := run(t, "", "log", "--admin-address", a.addr(), "--reset", "--level", "admin:error"); err != nil {
		t.Fatal(err)
	}
	if a.levels["http"] != "warning" || a.levels["admin"] != "error" {
		t.Errorf("after --reset --level admin:error: %v", a.levels)
	}
	_, _, err = run(t, "", "log", "--admin-address", a.addr(), "--level", "nosuch:debug")
	if err == nil || !strings.Contains(err.Error(), "unknown logger") {
		t.Errorf("unknown logger: %v", err)
	}
}

func TestAdminUnreachable(t *testing.T) {
	a := newAdminServer(t, fixturePath(t, "sidecar-config-dump.json"))
	addr := a.addr()
	a.Close()
	_, _, err := run(t, "", "cluster", "--admin-address", addr)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("unreachable admin: %v", err)
	}
}
