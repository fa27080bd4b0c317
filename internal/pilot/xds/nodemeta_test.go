package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// The node metadata a proxy sends on its ADS stream is parsed and kept:
// /debug/syncz shows its version and cluster (what `mesh proxy-status`
// prints), and a malformed value refuses the stream naming the key.
func TestNodeMetadataKeptAndShownInSyncz(t *testing.T) {
	w, _ := bookinfo(t)
	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)

	md, err := structpb.NewStruct(map[string]any{
		"ISTIO_VERSION": "1.24.2", "CLUSTER_ID": "east", "INTERCEPTION_MODE": "TPROXY",
		"APP_CONTAINERS": "reviews,helper",
		"POD_PORTS":      `[{"name":"http","containerPort":9080,"protocol":"TCP"}]`,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, "reviews-v1"), Metadata: md}
	if err := c.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, s, c.NodeID, "CDS")
	var row *SyncStatus
	for _, r := range s.Syncz() {
		if r.Proxy == c.NodeID {
			row = &r
		}
	}
	if row == nil || row.IstioVersion != "1.24.2" || row.ClusterID != "east" {
		t.Fatalf("syncz row %+v: want istioVersion 1.24.2, clusterID east", row)
	}
	s.mu.Lock()
	got := s.proxies[c.NodeID].proxy.Metadata
	s.mu.Unlock()
	if got.InterceptionMode != "TPROXY" || strings.Join(got.AppContainers, ",") != "reviews,helper" ||
		len(got.PodPorts) != 1 || got.PodPorts[0].ContainerPort != 9080 || got.PodPorts[0].Name != "http" {
		t.Errorf("kept metadata %+v", got)
	}

	for _, bad := range []struct{ key, value, want string }{
		{"INTERCEPTION_MODE", "MAGIC", "INTERCEPTION_MODE"},
		{"POD_PORTS", "not json", "POD_PORTS"},
	} {
		md, _ := structpb.NewStruct(map[string]any{bad.key: bad.value})
		if _, err := model.ParseNodeMetadata(md); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s=%q: error %v, want one naming %s", bad.key, bad.value, err, bad.want)
		}
	}
	md, _ = structpb.NewStruct(map[string]any{"ISTIO_VERSION": 7.0})
	if _, err := model.ParseNodeMetadata(md); err == nil || !strings.Contains(err.Error(), "ISTIO_VERSION") {
		t.Errorf("numeric ISTIO_VERSION: error %v", err)
	}
	rejected := metricValue(t, s.Metrics.RejectedStreams)
	md, _ = structpb.NewStruct(map[string]any{"INTERCEPTION_MODE": "MAGIC"})
	bad := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, "ratings-v1"), Metadata: md}
	_ = bad.Start(ctx, conn)
	for metricValue(t, s.Metrics.RejectedStreams) == rejected {
		select {
		case <-ctx.Done():
			t.Fatal("a stream with INTERCEPTION_MODE MAGIC was not refused")
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
}
