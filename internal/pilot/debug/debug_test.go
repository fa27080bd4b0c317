package debug

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	promodel "github.com/prometheus/common/model"
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
	// The index `mesh dashboard controlz` opens lists the endpoints; only "/" is it.
	if code, body := get(t, web.URL, "/"); code != http.StatusOK || !strings.Contains(body, "/debug/syncz") || !strings.Contains(body, "/metrics") {
		t.Errorf("/: %d %q, want the list of endpoints", code, body)
	}
	if code, _ := get(t, web.URL, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d, want 404", code)
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

	// Istio's names, as its control plane dashboard queries them, parsed as Prometheus does.
	_, metrics := get(t, web.URL, "/metrics")
	parser := expfmt.NewTextParser(promodel.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(metrics))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus' text format: %v", err)
	}
	sample := func(name string, labels map[string]string) *dto.Metric {
	next:
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m
		}
		return nil
	}
	if m := sample("pilot_xds", map[string]string{"version": "unknown"}); m.GetGauge().GetValue() != 1 {
		t.Errorf("pilot_xds{version=unknown} = %v, want 1 connected proxy", m)
	}
	for _, typ := range []string{"cds", "eds", "lds", "rds"} {
		if m := sample("pilot_xds_pushes", map[string]string{"type": typ}); m.GetCounter().GetValue() < 1 {
			t.Errorf("pilot_xds_pushes{type=%s} = %v, want at least 1", typ, m)
		}
	}
	m := sample("pilot_proxy_convergence_time", nil)
	var bounds []float64
	for _, b := range m.GetHistogram().GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			bounds = append(bounds, b.GetUpperBound())
		}
	}
	if m.GetHistogram().GetSampleCount() != 1 || !slices.Equal(bounds, []float64{.1, .5, 1, 3, 5, 10, 20, 30}) {
		t.Errorf("pilot_proxy_convergence_time = %v, want the one proxy's convergence in Istio's buckets", m)
	}
	if _, body := get(t, web.URL, "/version"); !strings.Contains(body, `"version"`) {
		t.Errorf("/version: %s", body)
	}
}
