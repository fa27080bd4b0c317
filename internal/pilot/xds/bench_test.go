package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

func BenchmarkGenerate1000Services(b *testing.B) {
	w := pilottest.Synthetic(1000, 5, 10, false)
	snap := w.Snapshot(1)
	pod := w.In.Pods[0]
	p, _ := model.ParseNodeID(model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace))
	b.Run("first proxy (cold push context)", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := NewPushContext(snap).Generate(p, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	pc := NewPushContext(snap)
	if _, err := pc.Generate(p, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("another proxy (warm push context)", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := pc.Generate(p, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("model build", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			model.Build(2, w.In)
		}
	})
}

func BenchmarkPush20Proxies(b *testing.B) {
	w := pilottest.Synthetic(1000, 5, 10, false)
	s := NewServer(context.Background(), nil, nil, slog.New(slog.DiscardHandler))
	s.Update(w.Snapshot(1), model.Change{Full: true})
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	var clients []*pilottest.ADSClient
	for i := 0; i < 20; i++ {
		pod := w.In.Pods[i*100]
		c := &pilottest.ADSClient{NodeID: model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace), Wildcard: true}
		if err := c.Start(context.Background(), conn); err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
	}
	start := time.Now()
	for _, c := range clients {
		if err := c.WaitFor(context.Background(), func(c *pilottest.ADSClient) bool {
			return c.Count(resourcev3.EndpointType) > 0 && c.Count(resourcev3.RouteType) > 0 && c.Count(resourcev3.ClusterType) > 0
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("20 proxies connected and configured in %v", time.Since(start))
}

func BenchmarkEndpointPush100Delta(b *testing.B) {
	w := pilottest.Synthetic(1000, 5, 10, false)
	s := NewServer(context.Background(), nil, nil, slog.New(slog.DiscardHandler))
	s.Update(w.Snapshot(1), model.Change{Full: true})
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	conn, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	var eds atomic.Int64
	for i := 0; i < 100; i++ {
		pod := w.In.Pods[i*50]
		c := &pilottest.DeltaClient{NodeID: model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace),
			OnApply: func(t string, _ int) {
				if t == resourcev3.EndpointType {
					eds.Add(1)
				}
			}}
		if err := c.Start(context.Background(), conn); err != nil {
			b.Fatal(err)
		}
	}
	for eds.Load() < 100 {
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		before := eds.Load()
		w.In.Pods = append(w.In.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-1-x%d", n), Namespace: "ns-1", Labels: map[string]string{"app": "svc-1", "version": "v1"}},
			Status:     corev1.PodStatus{PodIP: w.NextIP()},
		})
		snap := w.Snapshot(uint64(n + 2))
		start := time.Now()
		s.Update(snap, model.Change{EndpointHosts: map[string]bool{"svc-1.ns-1.svc.cluster.local": true}})
		gen := time.Since(start)
		for eds.Load() < before+100 {
			time.Sleep(time.Millisecond)
		}
		b.Logf("update %v, all acked %v", gen, time.Since(start))
	}
}

// BenchmarkConfigBytes logs one sidecar's config size without and with
// Sidecar scoping (egress ./*) in the 1,000-service synthetic mesh.
func BenchmarkConfigBytes(b *testing.B) {
	for _, scoped := range []bool{false, true} {
		w := pilottest.Synthetic(1000, 5, 10, scoped)
		pod := w.In.Pods[0]
		p, _ := model.ParseNodeID(model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace))
		res, err := NewPushContext(w.Snapshot(1)).Generate(p, nil)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, t := range TypeURLs {
			for _, it := range res.items(t) {
				n += proto.Size(it.msg)
			}
		}
		b.Logf("scoped=%v: %d clusters, %d bytes", scoped, len(res.items(resourcev3.ClusterType)), n)
	}
}

// BenchmarkEndpointRegenerate2000 is the CPU work of the pilot bench's
// endpoint-only push (a pod added to svc-1) without the streams: Reuse,
// then each of 2,000 proxies regenerated as the server does, with its
// group key memo.
func BenchmarkEndpointRegenerate2000(b *testing.B) {
	w := pilottest.Synthetic(1000, 5, 10, false)
	pc := NewPushContext(w.Snapshot(1))
	var proxies []*model.Proxy
	memos := make([]atomic.Pointer[keyMemo], 2000)
	pods := w.In.Pods
	for i := 0; i < 2000; i++ {
		pod := pods[(i*len(pods))/2000]
		p, _ := model.ParseNodeID(model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace))
		proxies = append(proxies, p)
		if _, err := pc.generate(p, nil, &memos[i]); err != nil {
			b.Fatal(err)
		}
	}
	hosts := map[string]bool{"svc-1.ns-1.svc.cluster.local": true}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		w.In.Pods = append(w.In.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-1-x%d", n), Namespace: "ns-1", Labels: map[string]string{"app": "svc-1", "version": "v1"}},
			Status:     corev1.PodStatus{PodIP: w.NextIP()},
		})
		snap := w.Snapshot(uint64(n + 2))
		b.StartTimer()
		next := pc.Reuse(snap, hosts)
		for i, p := range proxies {
			if _, err := next.generate(p, nil, &memos[i]); err != nil {
				b.Fatal(err)
			}
		}
		pc = next
	}
}
