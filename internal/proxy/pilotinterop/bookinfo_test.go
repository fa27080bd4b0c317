package pilotinterop

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/freeport"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/agent"
)

const fixtures = "../../../../shared/fixtures/bookinfo"

// adsServer is go-control-plane's ADS server on loopback, recording what the
// proxy ACKed and NACKed.
type adsServer struct {
	cache cachev3.SnapshotCache
	addr  string
	mu    sync.Mutex
	acks  map[string]string
	nacks []string
}

func startADS(t *testing.T) *adsServer {
	t.Helper()
	s := &adsServer{cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil), acks: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.GetErrorDetail() != nil {
			s.nacks = append(s.nacks, r.GetErrorDetail().GetMessage())
		} else if r.GetResponseNonce() != "" {
			s.acks[r.GetTypeUrl()] = r.GetVersionInfo()
		}
		return nil
	}, StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.GetErrorDetail() != nil {
			s.nacks = append(s.nacks, r.GetErrorDetail().GetMessage())
		} else if r.GetResponseNonce() != "" {
			s.acks[r.GetTypeUrl()] = "1" // delta has no version: an ACK of the only snapshot
		}
		return nil
	}}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(context.Background(), s.cache, cb))
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return s
}

// world is Bookinfo in "default" with an ingress gateway pod, plus rules.
func world(t testing.TB, rules ...string) (*pilottest.World, *xds.PushContext) {
	t.Helper()
	w := pilottest.NewWorld("default")
	if err := w.AddFile(filepath.Join(fixtures, "bookinfo.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if err := w.AddFile(filepath.Join(fixtures, "networking", r)); err != nil {
			t.Fatal(err)
		}
	}
	w.AddNamespace("mesh-system", nil)
	w.In.Pods = append(w.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh-ingressgateway-0", Namespace: "mesh-system", Labels: map[string]string{"istio": "ingressgateway"}},
		Status:     corev1.PodStatus{PodIP: "198.18.200.1"},
	})
	return w, xds.NewPushContext(model.Build(1, w.Input()))
}

// onLoopback moves every listener that binds to 127.0.0.1 on a free port:
// pilot's addresses (0.0.0.0, pod IPs, fixed ports) are for a pod's own
// network namespace, and a test must bind nothing beyond loopback. The
// port comes from freeport: one picked with a listen on port 0 was once
// taken by the ADS server started next, before the proxy bound it, and
// the client's requests met the ADS server's HTTP/2 preface.
func onLoopback(t *testing.T, in []types.Resource) []types.Resource {
	t.Helper()
	var out []types.Resource
	for _, r := range in {
		l := proto.Clone(r.(*listenerv3.Listener)).(*listenerv3.Listener)
		if sa := l.GetAddress().GetSocketAddress(); sa != nil {
			l.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(freeport.T(t))}}}}
		}
		out = append(out, l)
	}
	return out
}

// TestProxyACKsPilotBookinfo generates what pilot sends to Bookinfo's
// productpage sidecar and to the ingress gateway, under several of the
// Bookinfo rule sets, serves it over ADS and requires mesh-proxy to ACK every
// type with no NACK, over state-of-the-world and delta xDS.
func TestProxyACKsPilotBookinfo(t *testing.T) {
	cases := map[string][]string{
		"no rules (auto mTLS)":      nil,
		"subsets and reviews 80/20": {"destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml", "bookinfo-gateway.yaml"},
		"ISTIO_MUTUAL subsets":      {"destination-rule-all-mtls.yaml", "virtual-service-all-v1.yaml"},
		"jason header match, faults": {"destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml",
			"virtual-service-ratings-test-delay.yaml", "fault-injection-details-v1.yaml"},
	}
	for name, rules := range cases {
		t.Run(name, func(t *testing.T) {
			w, pc := world(t, rules...)
			nodes := []string{
				w.PodProxy(model.SidecarProxy, "productpage-v1"),
				model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system"),
			}
			for _, node := range nodes {
				checkACK(t, pc, node, false)
				checkACK(t, pc, node, true)
			}
		})
	}
}

func checkACK(t *testing.T, pc *xds.PushContext, node string, delta bool) {
	t.Helper()
	p, err := model.ParseNodeID(node)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pc.Generate(p, nil)
	if err != nil {
		t.Fatalf("pilot generate for %s: %v", node, err)
	}
	ads := startADS(t)
	res := map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  r.Items(resourcev3.ClusterType),
		resourcev3.EndpointType: r.Items(resourcev3.EndpointType),
		resourcev3.ListenerType: onLoopback(t, r.Items(resourcev3.ListenerType)),
		resourcev3.RouteType:    r.Items(resourcev3.RouteType),
	}
	// A gateway without a Gateway resource has clusters but no listeners.
	if len(res[resourcev3.ClusterType]) == 0 || (p.Type == model.SidecarProxy && len(res[resourcev3.ListenerType]) == 0) {
		t.Fatalf("pilot generated %d clusters and %d listeners for %s; want some of each", len(res[resourcev3.ClusterType]), len(res[resourcev3.ListenerType]), node)
	}
	snap, err := cachev3.NewSnapshot("1", res)
	if err != nil {
		t.Fatal(err)
	}
	if err := ads.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
	px, err := agent.New(agent.Options{XDSAddress: ads.addr, Delta: delta, NodeID: node, AdminAddress: "127.0.0.1:0",
		XDSBackoff: [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := px.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); px.Close() }()

	want := []string{resourcev3.ClusterType}
	if len(res[resourcev3.ListenerType]) > 0 {
		want = append(want, resourcev3.ListenerType)
	}
	if len(res[resourcev3.EndpointType]) > 0 {
		want = append(want, resourcev3.EndpointType)
	}
	if len(res[resourcev3.RouteType]) > 0 {
		want = append(want, resourcev3.RouteType)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ads.mu.Lock()
		nacks := append([]string(nil), ads.nacks...)
		var missing []string
		for _, typ := range want {
			if ads.acks[typ] != "1" {
				missing = append(missing, typ[strings.LastIndex(typ, ".")+1:])
			}
		}
		ads.mu.Unlock()
		if len(nacks) > 0 {
			t.Fatalf("%s: mesh-proxy NACKed pilot's config:\n%s", node, strings.Join(nacks, "\n"))
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no ACK of version 1 for %v after 10s", node, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
