package proxystatus

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/pilot/debug"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/agent"
	"mesh.dev/mesh/internal/syncstatus"
	"mesh.dev/mesh/internal/version"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func shared(t *testing.T, parts ...string) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	p := filepath.Join(append([]string{filepath.Dir(here), "..", "..", "..", "shared"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return p
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx := cli.NewContext(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd := NewCommand(ctx)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func exitCode(err error) int {
	var s *cli.SilentError
	if errors.As(err, &s) {
		return s.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

// syncz follows the /debug/syncz contract: one proxy in sync, one stale,
// one that rejected its listeners.
const syncz = `[
 {"proxy": "sidecar~198.18.0.7~reviews-v1-0.default~default.svc.cluster.local", "clusterID": "Kubernetes", "istioVersion": "1.24.2",
  "types": {"CDS": {"sent": "5", "acked": "5", "status": "SYNCED"}, "LDS": {"sent": "5", "acked": "4", "nonce": "n9", "status": "STALE"},
            "EDS": {"sent": "7", "acked": "7", "status": "SYNCED"}, "RDS": {"sent": "5", "acked": "5", "status": "SYNCED"}, "ECDS": {"status": "NOT SENT"}}},
 {"proxy": "sidecar~198.18.0.5~productpage-v1-0.default~default.svc.cluster.local",
  "types": {"CDS": {"sent": "5", "acked": "5", "status": "SYNCED"}, "LDS": {"sent": "5", "acked": "4", "nack": "listener 0.0.0.0_9080: unknown filter", "status": "NACK"},
            "EDS": {"sent": "7", "acked": "7", "status": "SYNCED"}, "RDS": {"sent": "5", "acked": "5", "status": "SYNCED"}}}
]`

func TestTableFromSyncz(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/syncz" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, syncz)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	out, err := run(t, "--pilot-address", addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "PILOT") || !strings.Contains(out, addr) {
		t.Errorf("no PILOT column naming %s:\n%s", addr, out)
	}
	// The port changes per run; a same-width stand-in keeps the columns.
	out = strings.ReplaceAll(out, addr, "127.0.0.1:"+strings.Repeat("P", len(addr)-len("127.0.0.1:")))
	path := filepath.Join("testdata", "syncz-table.txt")
	if *update {
		os.WriteFile(path, []byte(out), 0o644)
	}
	want, _ := os.ReadFile(path)
	if out != string(want) {
		t.Errorf("table differs from %s:\n%s", path, out)
	}
	for _, w := range []string{"productpage-v1-0.default", "NACK (5)", "STALE (5)", "NOT SENT", "productpage-v1-0.default LDS: listener 0.0.0.0_9080: unknown filter"} {
		if !strings.Contains(out, w) {
			t.Errorf("missing %q", w)
		}
	}
	if strings.Index(out, "productpage") > strings.Index(out, "reviews") {
		t.Errorf("rows not sorted by name:\n%s", out)
	}
}

// With several pilot replicas each proxy is connected to one; the table
// lists them all, in name order, each beside its replica.
func TestGatherMergesReplicas(t *testing.T) {
	serve := func(body string) *syncstatus.Client {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
		t.Cleanup(srv.Close)
		c, err := syncstatus.New(strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := serve(`[{"proxy": "sidecar~198.18.0.2~b-0.default~default.svc.cluster.local", "types": {}}, {"proxy": "sidecar~198.18.0.4~d-0.default~default.svc.cluster.local", "types": {}}]`)
	b := serve(`[{"proxy": "sidecar~198.18.0.1~a-0.default~default.svc.cluster.local", "types": {}}, {"proxy": "sidecar~198.18.0.3~c-0.default~default.svc.cluster.local", "types": {}}]`)
	got, err := gather(context.Background(), []cmdutil.Pilot{{Name: "mesh-pilot-x", Client: a}, {Name: "mesh-pilot-y", Client: b}})
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, s := range got {
		rows = append(rows, s.Name()+"@"+s.Pilot)
	}
	want := "a-0.default@mesh-pilot-y b-0.default@mesh-pilot-x c-0.default@mesh-pilot-y d-0.default@mesh-pilot-x"
	if strings.Join(rows, " ") != want {
		t.Errorf("rows %v, want %s", rows, want)
	}
}

// A pod in sidecar fallback is reported by every replica its proxy is not
// connected to: the table shows it once, as FALLBACK when no replica
// serves its proxy and with its own sync state when one does, and says
// why below the table.
func TestFallbackRows(t *testing.T) {
	x := `[{"proxy": "sidecar~198.18.0.2~b-0.default~default.svc.cluster.local", "fallback": "ProxyNotReady",
	        "types": {"CDS": {"sent": "3", "acked": "3", "status": "SYNCED"}}},
	       {"proxy": "c-0.default", "fallback": "ProxyHung", "disconnected": true, "types": {}}]`
	y := `[{"proxy": "b-0.default", "fallback": "ProxyNotReady", "disconnected": true, "types": {}},
	       {"proxy": "c-0.default", "fallback": "ProxyHung", "disconnected": true, "types": {}},
	       {"proxy": "sidecar~198.18.0.1~a-0.default~default.svc.cluster.local", "types": {}}]`
	var pilots []cmdutil.Pilot
	for name, body := range map[string]string{"mesh-pilot-x": x, "mesh-pilot-y": y} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
		t.Cleanup(srv.Close)
		c, err := syncstatus.New(strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		pilots = append(pilots, cmdutil.Pilot{Name: name, Client: c})
	}
	got, err := gather(context.Background(), pilots)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := &Options{Context: cli.NewContext(genericiooptions.IOStreams{Out: &out, ErrOut: &out}), Output: cli.Structured()}
	if err := o.printTable(got); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	fields := func(prefix string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no line %q in:\n%s", prefix, out.String())
		return nil
	}
	if f := fields("a-0.default"); f[len(f)-2] != "mesh-pilot-y" {
		t.Errorf("a-0 row %v: want its replica", f)
	}
	if f := fields("b-0.default"); f[2] != "SYNCED" || f[len(f)-2] != "mesh-pilot-x" {
		t.Errorf("b-0 row %v: want its own sync state from the replica that serves it", f)
	}
	if f := fields("c-0.default"); strings.Join(f[2:2+len(syncstatus.Types)], " ") != strings.TrimSpace(strings.Repeat("FALLBACK ", len(syncstatus.Types))) || f[len(f)-2] != "-" {
		t.Errorf("c-0 row %v: want FALLBACK in every xDS column and no replica", f)
	}
	rows := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "b-0.default") || strings.HasPrefix(l, "c-0.default") {
			rows++
		}
	}
	if rows != 2 {
		t.Errorf("%d rows for b-0 and c-0, want one each:\n%s", rows, out.String())
	}
	for _, want := range []string{"In sidecar fallback", "  b-0.default: ProxyNotReady, its proxy is connected", "  c-0.default: ProxyHung, no proxy connected"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestAgainstPilotAndProxy runs mesh-pilot's xDS server and debug handler
// in-process over Bookinfo, connects a real mesh-proxy to it over gRPC on
// loopback, and checks both forms of proxy-status.
func TestAgainstPilotAndProxy(t *testing.T) {
	w := pilottest.NewWorld("default")
	if err := w.AddFile(shared(t, "fixtures", "bookinfo", "bookinfo.yaml")); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := xds.NewServer(context.Background(), nil, xds.NewMetrics(reg), nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	dbg := httptest.NewServer(debug.Handler(s, reg, func() error { return nil }))
	t.Cleanup(dbg.Close)
	pilotAddr := strings.TrimPrefix(dbg.URL, "http://")

	node := w.PodProxy(model.SidecarProxy, "productpage-v1")
	// The proxy's node metadata comes from its environment, as in a pod.
	meta, err := agent.NodeMetadataFromEnv([]string{"ISTIO_META_CLUSTER_ID=east", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := agent.New(agent.Options{XDSAddress: lis.Addr().String(), NodeID: node, AdminAddress: "127.0.0.1:0", NodeMetadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.Close() })

	// Wait until pilot's view of the proxy settles: CDS answered (ACK or
	// NACK) and the states unchanged over a few polls.
	pc, _ := syncstatus.New(pilotAddr)
	var final syncstatus.ProxyStatus
	last, stable := "", 0
	deadline := time.Now().Add(20 * time.Second)
	for stable < 10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		st, err := pc.Syncz(context.Background())
		if err != nil {
			continue
		}
		for _, ps := range st {
			if ps.Proxy != node {
				continue
			}
			if cds := ps.Status("CDS").Status; cds != "SYNCED" && cds != "NACK" {
				continue
			}
			key := ""
			for _, typ := range syncstatus.Types {
				key += ps.Status(typ).Status + "/" + ps.Status(typ).Sent + " "
			}
			if key == last {
				stable++
			} else {
				last, stable = key, 0
			}
			final = ps
		}
	}
	if stable < 10 {
		t.Fatalf("pilot's view of %s never settled; last: %q", node, last)
	}
	out, err := run(t, "--pilot-address", pilotAddr)
	if err != nil {
		t.Fatal(err)
	}
	name := syncstatus.NodeName(node)
	var row []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, name+" ") {
			row = strings.Split(strings.Join(strings.Fields(l), " "), " ")
		}
	}
	if row == nil {
		t.Fatalf("no row for %s:\n%s", name, out)
	}
	// The cluster and release are what the proxy's node metadata said: its
	// environment's cluster and its own build's version.
	if row[1] != "east" || row[len(row)-1] != version.Version {
		t.Errorf("row %q: want CLUSTER east and VERSION %s (mesh-proxy's ISTIO_VERSION)", row, version.Version)
	}
	// The row must say what pilot says, type by type.
	cells := strings.Join(row[1:], " ")
	for _, typ := range syncstatus.Types {
		ts := final.Status(typ)
		want := ts.Status
		if ts.Sent != "" {
			want += " (" + ts.Sent + ")"
		}
		if !strings.Contains(cells, want) {
			t.Errorf("%s: row %q lacks %q", typ, cells, want)
		}
		if ts.Status == "NACK" && !strings.Contains(out, name+" "+typ+": "+strings.SplitN(ts.Nack, "\n", 2)[0]) {
			t.Errorf("%s NACK message not listed:\n%s", typ, out)
		}
	}
	allSynced := true
	for _, typ := range []string{"CDS", "LDS", "RDS", "EDS"} {
		allSynced = allSynced && final.Status(typ).Status == "SYNCED"
	}

	out, err = run(t, "--pilot-address", pilotAddr, "--admin-address", p.AdminAddr())
	switch {
	case allSynced && exitCode(err) != 0:
		t.Errorf("a synced proxy differs from what pilot sent (exit %d, %v):\n%s", exitCode(err), err, out)
	case !allSynced && exitCode(err) != 1:
		t.Errorf("the proxy rejected config, yet the comparison found no difference (exit %d, %v):\n%s", exitCode(err), err, out)
	case !allSynced && final.Status("CDS").Status == "NACK" && !strings.Contains(out, "- removed cluster outbound|9080||"):
		t.Errorf("clusters the proxy rejected should show as missing on its side:\n%s", out)
	}
	t.Logf("pilot's view: %s\n%s", last, out)
}
