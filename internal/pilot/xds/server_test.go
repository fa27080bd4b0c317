package xds

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// startADS serves s on a loopback port and returns a client connection.
func startADS(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func endpointsOf(c *pilottest.ADSClient, cluster string) []string {
	a := c.Resource(resourcev3.EndpointType, cluster)
	if a == nil {
		return nil
	}
	var cla endpointv3.ClusterLoadAssignment
	if a.UnmarshalTo(&cla) != nil {
		return nil
	}
	var out []string
	for _, l := range cla.Endpoints {
		for _, e := range l.LbEndpoints {
			out = append(out, e.GetEndpoint().Address.GetSocketAddress().Address)
		}
	}
	return out
}

type applyLog struct {
	mu  sync.Mutex
	per map[string]int
}

func (l *applyLog) add(t, _ string) {
	l.mu.Lock()
	l.per[ShortType(t)]++
	l.mu.Unlock()
}

func (l *applyLog) get(short string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.per[short]
}

func TestADSPushesAndEndpointOnlyUpdates(t *testing.T) {
	w, _ := bookinfo(t)
	reg := prometheus.NewRegistry()
	s := NewServer(context.Background(), nil, NewMetrics(reg), nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)

	log := &applyLog{per: map[string]int{}}
	c := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, "productpage-v1"), OnApply: log.add}
	if err := c.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	reviews := "outbound|9080||reviews.default.svc.cluster.local"
	if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool {
		return len(endpointsOf(c, reviews)) == 3 && c.Resource(resourcev3.RouteType, "9080") != nil
	}); err != nil {
		t.Fatalf("client never got reviews' 3 endpoints and route 9080: %v", err)
	}
	if n := metricValue(t, s.Metrics.ConnectedProxies.WithLabelValues("unknown")); n != 1 {
		t.Errorf("connected proxies gauge = %v", n)
	}
	waitSynced(t, s, c.NodeID, "CDS", "EDS", "LDS", "RDS")
	before := map[string]int{"CDS": log.get("CDS"), "LDS": log.get("LDS"), "RDS": log.get("RDS"), "EDS": log.get("EDS")}

	// A new reviews pod: an endpoint-only change.
	w.In.Pods = append(w.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-v3-extra", Namespace: "default", Labels: map[string]string{"app": "reviews", "version": "v3"}},
		Status:     corev1.PodStatus{PodIP: "198.18.100.100"},
	})
	in := w.Input()
	s.Update(model.Build(2, in), model.Change{EndpointHosts: map[string]bool{"reviews.default.svc.cluster.local": true}})
	if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool { return len(endpointsOf(c, reviews)) == 4 }); err != nil {
		t.Fatalf("new endpoint never arrived: %v", err)
	}
	waitSynced(t, s, c.NodeID, "EDS")
	for _, typ := range []string{"CDS", "LDS", "RDS"} {
		if got := log.get(typ); got != before[typ] {
			t.Errorf("endpoint-only change re-sent %s (%d → %d responses)", typ, before[typ], got)
		}
	}

	// A config change: the route table changes, endpoints do not.
	if err := w.AddYAML([]byte(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
`)); err != nil {
		t.Fatal(err)
	}
	eds := log.get("EDS")
	s.Update(model.Build(3, w.Input()), model.Change{Full: true})
	if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool {
		return strings.Contains(c.Resource(resourcev3.RouteType, "9080").String(), "outbound|9080|v2|reviews")
	}); err != nil {
		t.Fatalf("route to v2 never arrived: %v", err)
	}
	if got := log.get("EDS"); got != eds {
		t.Errorf("route-only change re-sent EDS (%d → %d)", eds, got)
	}
}

func waitSynced(t *testing.T, s *Server, proxy string, types ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var row *SyncStatus
		for _, r := range s.Syncz() {
			if r.Proxy == proxy {
				row = &r
			}
		}
		ok := row != nil
		for _, typ := range types {
			if ok && row.Types[typ].Status != StatusSynced {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy %s never SYNCED for %v: %+v (all: %+v)", proxy, types, row, s.Syncz())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNACKIsRecordedAndCounted(t *testing.T) {
	w, _ := bookinfo(t)
	reg := prometheus.NewRegistry()
	s := NewServer(context.Background(), nil, NewMetrics(reg), nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	c := &pilottest.ADSClient{
		NodeID: w.PodProxy(model.SidecarProxy, "details-v1"),
		Reject: func(typeURL string, _ []*anypb.Any) error {
			if typeURL == resourcev3.ListenerType {
				return errors.New("listener 0.0.0.0_9080: unsupported filter")
			}
			return nil
		},
	}
	if err := c.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := s.Syncz()
		if len(rows) == 1 && rows[0].Types["LDS"].Status == StatusNACK {
			if !strings.Contains(rows[0].Types["LDS"].Nack, "unsupported filter") {
				t.Errorf("NACK message not kept: %+v", rows[0].Types["LDS"])
			}
			if rows[0].Types["ECDS"].Status != StatusNotSent {
				t.Errorf("ECDS should be NOT SENT, got %+v", rows[0].Types["ECDS"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no NACK in syncz: %+v", rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := metricValue(t, s.Metrics.NACKs.WithLabelValues("lds")); n < 1 {
		t.Errorf("NACK counter = %v", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "pilot_xds_lds_reject" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			found = labels["node"] == c.NodeID && strings.Contains(labels["err"], "unsupported filter") && m.GetGauge().GetValue() == 1
		}
	}
	if !found {
		t.Errorf("no pilot_xds_lds_reject{node=%q,err=...unsupported filter} 1 in %v", c.NodeID, mfs)
	}
}

func TestMalformedNodeIDIsRefused(t *testing.T) {
	s := NewServer(context.Background(), nil, nil, nil)
	s.Update(model.Build(1, model.Input{}), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, Node: &corev3.Node{Id: "not-a-node-id"}}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	if err == nil || !strings.Contains(err.Error(), "want 4 parts") {
		t.Fatalf("want the stream refused with a reason, got %v", err)
	}
}

func TestDeltaADS(t *testing.T) {
	w, _ := bookinfo(t)
	s := NewServer(context.Background(), nil, nil, nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	node := w.PodProxy(model.SidecarProxy, "ratings-v1")
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, Node: &corev3.Node{Id: node}}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range resp.Resources {
		names = append(names, r.Name)
	}
	if !contains(names, "outbound|9080||reviews.default.svc.cluster.local") {
		t.Fatalf("delta CDS lacks reviews: %v", names)
	}
	if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, s, node, "CDS")
}

func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}
