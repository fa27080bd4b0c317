package debug

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
)

func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDebugEndpoints(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	s := xds.NewServer(ctx, nil, xds.NewMetrics(reg), nil)
	ready := func() error {
		select {
		case <-s.Ready():
			return nil
		default:
			return errors.New("waiting for the first model snapshot")
		}
	}
	web := httptest.NewServer(Handler(s, reg, ready))
	defer web.Close()

	if code, body := get(t, web.URL, "/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "snapshot") {
		t.Errorf("/ready before any snapshot: %d %q", code, body)
	}
	w := pilottest.NewWorld("default")
	if err := w.AddFile(filepath.Join("../../../../shared/fixtures/bookinfo", "bookinfo.yaml")); err != nil {
		t.Fatal(err)
	}
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	if code, _ := get(t, web.URL, "/ready"); code != http.StatusOK {
		t.Errorf("/ready after a snapshot: %d", code)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	node := w.PodProxy(model.SidecarProxy, "reviews-v2")
	c := &pilottest.ADSClient{NodeID: node}
	if err := c.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool {
		return c.Count(resourcev3.RouteType) > 0 && c.Count(resourcev3.EndpointType) > 0
	}); err != nil {
		t.Fatal(err)
	}

	var rows []map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, body := get(t, web.URL, "/debug/syncz")
		if err := json.Unmarshal([]byte(body), &rows); err != nil {
			t.Fatalf("syncz is not a JSON array: %v\n%s", err, body)
		}
		if len(rows) == 1 && strings.Contains(body, `"status": "SYNCED"`) && !strings.Contains(body, `"status": "STALE"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("syncz never settled: %s", body)
		}
	}
	if rows[0]["proxy"] != node {
		t.Errorf("syncz proxy = %v", rows[0]["proxy"])
	}
	types := rows[0]["types"].(map[string]any)
	for _, typ := range []string{"CDS", "LDS", "EDS", "RDS", "ECDS", "SDS"} {
		ts, ok := types[typ].(map[string]any)
		if !ok {
			t.Errorf("syncz lacks %s", typ)
			continue
		}
		for _, k := range []string{"sent", "acked", "nonce", "nack", "status"} {
			if _, ok := ts[k]; !ok {
				t.Errorf("syncz %s lacks %q", typ, k)
			}
		}
	}
	if cds := types["CDS"].(map[string]any); cds["sent"] != c.Version(resourcev3.ClusterType) || cds["status"] != "SYNCED" {
		t.Errorf("CDS row %v, client holds version %s", cds, c.Version(resourcev3.ClusterType))
	}

	code, body := get(t, web.URL, "/debug/config_dump?proxyID="+url.QueryEscape(node))
	if code != http.StatusOK {
		t.Fatalf("config_dump: %d %s", code, body)
	}
	var cd adminv3.ConfigDump
	if err := protojson.Unmarshal([]byte(body), &cd); err != nil {
		t.Fatalf("config_dump is not an admin.v3.ConfigDump: %v", err)
	}
	if !strings.Contains(body, "outbound|9080||ratings.default.svc.cluster.local") || !strings.Contains(body, "type.googleapis.com/envoy.admin.v3.ClustersConfigDump") {
		t.Error("config dump lacks the ratings cluster or the clusters section")
	}
	if code, body := get(t, web.URL, "/debug/config_dump"); code != http.StatusBadRequest || !strings.Contains(body, "proxyID") {
		t.Errorf("missing proxyID: %d %q", code, body)
	}
	if code, body := get(t, web.URL, "/debug/config_dump?proxyID=bogus"); code != http.StatusBadRequest || !strings.Contains(body, "want 4 parts") {
		t.Errorf("bad proxyID: %d %q", code, body)
	}

	_, metrics := get(t, web.URL, "/metrics")
	for _, want := range []string{"mesh_pilot_xds_connected_proxies 1", `mesh_pilot_xds_pushes_total{type="CDS"}`, "mesh_pilot_proxy_convergence_seconds_bucket"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if _, body := get(t, web.URL, "/version"); !strings.Contains(body, `"version"`) {
		t.Errorf("/version: %s", body)
	}
}
