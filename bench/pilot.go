package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
)

// The pilot benchmark builds a synthetic mesh (1,000 services in 10
// namespaces, 5 pods each: 5,000 endpoints; every tenth service with
// subsets and a 90/10 split), feeds it to the xDS server directly (not
// through an API server), connects 2,000 SotW ADS clients over real gRPC on
// loopback in the same process, and times, from the model change to the
// last client having received and ACKed the new config:
//   - a full push: a DestinationRule and VirtualService change on a service
//     every proxy sees (new clusters, endpoints and routes for all 2,000);
//   - an endpoint-only push: one new pod (EDS only, to the proxies using it).
//
// The baseline is the same push to a single connected proxy, measured in the
// same run with the same model.
func init() {
	register(Bench{Name: "pilot", Issue: 6, Run: benchPilot})
}

const (
	pilotServices   = 1000
	pilotPods       = 5
	pilotNamespaces = 10
	pilotProxies    = 2000
	pilotConns      = 20
)

type pilotRig struct {
	world   *pilottest.World
	server  *xds.Server
	grpc    *grpc.Server
	conns   []*grpc.ClientConn
	clients []*benchClient
	version uint64
}

// benchClient counts the responses of each type its ADS client ACKed.
type benchClient struct {
	c      *pilottest.ADSClient
	counts [4]atomic.Int64 // CDS, EDS, LDS, RDS
}

var benchTypes = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}

func typeIndex(t string) int {
	for i, u := range benchTypes {
		if u == t {
			return i
		}
	}
	return -1
}

func newPilotRig(ctx context.Context, proxies int, delta bool) (*pilotRig, error) {
	r := &pilotRig{world: pilottest.Synthetic(pilotServices, pilotPods, pilotNamespaces, false)}
	r.server = xds.NewServer(ctx, nil, nil, slog.New(slog.DiscardHandler))
	r.version++
	r.server.Update(r.world.Snapshot(r.version), model.Change{Full: true})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.grpc = grpc.NewServer(grpc.MaxConcurrentStreams(uint32(proxies + 10)))
	r.server.Register(r.grpc)
	go func() { _ = r.grpc.Serve(lis) }()
	nconn := pilotConns
	if proxies < nconn {
		nconn = proxies
	}
	for i := 0; i < nconn; i++ {
		c, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			return nil, err
		}
		r.conns = append(r.conns, c)
	}
	pods := r.world.In.Pods
	for i := 0; i < proxies; i++ {
		pod := pods[(i*len(pods))/proxies]
		bc := &benchClient{}
		node := model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace)
		count := func(t string) {
			if i := typeIndex(t); i >= 0 {
				bc.counts[i].Add(1)
			}
		}
		var err error
		if delta {
			err = (&pilottest.DeltaClient{NodeID: node, OnApply: func(t string, _ int) { count(t) }}).Start(ctx, r.conns[i%len(r.conns)])
		} else {
			bc.c = &pilottest.ADSClient{NodeID: node, Wildcard: true, OnApply: func(t, _ string) { count(t) }}
			err = bc.c.Start(ctx, r.conns[i%len(r.conns)])
		}
		if err != nil {
			return nil, err
		}
		r.clients = append(r.clients, bc)
	}
	return r, nil
}

func (r *pilotRig) close() {
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.grpc.Stop()
}

// snapshotCounts records how many responses of each type every client has seen.
func (r *pilotRig) snapshotCounts() [][4]int64 {
	out := make([][4]int64, len(r.clients))
	for i, c := range r.clients {
		for t := range c.counts {
			out[i][t] = c.counts[t].Load()
		}
	}
	return out
}

// waitAll waits until every client has ACKed a newer response of each type in want.
func (r *pilotRig) waitAll(ctx context.Context, before [][4]int64, want ...int) error {
	for {
		done := true
		for i, c := range r.clients {
			for _, t := range want {
				if c.counts[t].Load() <= before[i][t] {
					done = false
					break
				}
			}
			if !done {
				break
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not every proxy got the push: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// fullChange gives svc-0 (seen by every proxy) a third subset and routes to it.
func (r *pilotRig) fullChange() {
	dr := r.world.In.DestinationRules[0].DeepCopy()
	canary := proto.Clone(dr.Spec.Subsets[0]).(*networkingapi.Subset)
	canary.Name = fmt.Sprintf("canary-%d", r.version)
	dr.Spec.Subsets = append(dr.Spec.Subsets, canary)
	r.world.In.DestinationRules[0] = dr
	vs := r.world.In.VirtualServices[0].DeepCopy()
	vs.Spec.Http[0].Route[1].Destination.Subset = canary.Name
	r.world.In.VirtualServices[0] = vs
	r.version++
	r.server.Update(r.world.Snapshot(r.version), model.Change{Full: true})
}

// endpointChange adds a pod to svc-1.
func (r *pilotRig) endpointChange() {
	r.version++
	r.world.In.Pods = append(r.world.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-1-extra-%d", r.version), Namespace: "ns-1", Labels: map[string]string{"app": "svc-1", "version": "v1"}},
		Status:     corev1.PodStatus{PodIP: r.world.NextIP()},
	})
	r.server.Update(r.world.Snapshot(r.version), model.Change{EndpointHosts: map[string]bool{"svc-1.ns-1.svc.cluster.local": true}})
}

func (r *pilotRig) timePush(ctx context.Context, change func(), types ...int) (time.Duration, error) {
	before := r.snapshotCounts()
	start := time.Now()
	change()
	if err := r.waitAll(ctx, before, types...); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func benchPilot(_ *Env) ([]Row, error) {
	// Generous: on a loaded 2-core machine the 2,000-proxy pushes take minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	const cds, eds, rds = 0, 1, 3

	if path := os.Getenv("MESH_BENCH_PILOT_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	proxies := pilotProxies
	if n, err := strconv.Atoi(os.Getenv("MESH_BENCH_PILOT_PROXIES")); err == nil && n > 0 {
		proxies = n // for quick local runs; the report's figure is for 2,000
	}
	// Baseline: one proxy.
	slog.Info("pilot bench: baseline with one proxy")
	one, err := newPilotRig(ctx, 1, true)
	if err != nil {
		return nil, err
	}
	if err := one.waitAll(ctx, make([][4]int64, 1), 0, 1, 2, 3); err != nil {
		return nil, err
	}
	oneFull, err := one.timePush(ctx, one.fullChange, cds, eds, rds)
	if err != nil {
		return nil, err
	}
	oneEDS, err := one.timePush(ctx, one.endpointChange, eds)
	if err != nil {
		return nil, err
	}
	one.close()

	slog.Info("pilot bench: connecting", "proxies", proxies)
	start := time.Now()
	rig, err := newPilotRig(ctx, proxies, true)
	if err != nil {
		return nil, err
	}
	defer rig.close()
	if err := rig.waitAll(ctx, make([][4]int64, proxies), 0, 1, 2, 3); err != nil {
		return nil, fmt.Errorf("first push: %w", err)
	}
	connect := time.Since(start)
	slog.Info("pilot bench: all connected", "took", connect)
	var fulls, edss []time.Duration
	for i := 0; i < 3; i++ {
		d, err := rig.timePush(ctx, rig.fullChange, cds, eds, rds)
		if err != nil {
			return nil, fmt.Errorf("full push: %w", err)
		}
		fulls = append(fulls, d)
		slog.Info("pilot bench: full push", "took", d)
		d, err = rig.timePush(ctx, rig.endpointChange, eds)
		if err != nil {
			return nil, fmt.Errorf("endpoint push: %w", err)
		}
		edss = append(edss, d)
		slog.Info("pilot bench: endpoint push", "took", d)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem := int64(ms.HeapInuse + ms.StackInuse)

	unscoped, scoped, err := configBytes()
	if err != nil {
		return nil, err
	}
	full, edsPush := median(fulls), median(edss)
	cmd := "go run ./bench -only pilot"
	model := "delta ADS; synthetic model fed directly, no API server"
	return []Row{
		{Figure: fmt.Sprintf("pilot: first config to %d proxies, connect to all ACKed (%s)", proxies, model), Value: connect.Seconds(), Unit: "s", Command: cmd},
		{Figure: fmt.Sprintf("pilot: full push (CDS+EDS+RDS) to %d proxies, change to all ACKed, median of 3 (%s)", proxies, model),
			Value: full.Seconds(), Unit: "s", Baseline: "same push, 1 proxy", BaselineValue: oneFull.Seconds(),
			Target: "< 5 s", Met: Check(full < 5*time.Second), Command: cmd},
		{Figure: fmt.Sprintf("pilot: endpoint-only push (EDS) to %d proxies, change to all ACKed, median of 3 (%s)", proxies, model),
			Value: edsPush.Seconds(), Unit: "s", Baseline: "same push, 1 proxy", BaselineValue: oneEDS.Seconds(),
			Target: "< 1 s", Met: Check(edsPush < time.Second), Command: cmd},
		{Figure: fmt.Sprintf("pilot: heap+stacks in use after GC, with %d proxies connected (upper bound: includes the %d in-process clients)", proxies, proxies),
			Value: MiB(mem), Unit: "MiB", Target: "< 1024 MiB", Met: Check(MiB(mem) < 1024), Command: cmd},
		{Figure: "pilot: config bytes per sidecar, Sidecar egress ./* (own namespace only)", Value: float64(scoped) / 1024, Unit: "KiB",
			Baseline: "no Sidecar: all 1,000 services", BaselineValue: float64(unscoped) / 1024, Target: "smaller with scoping", Met: Check(scoped < unscoped), Command: cmd},
	}, nil
}

// configBytes is the marshalled size of one sidecar's resources without and
// with Sidecar scoping.
func configBytes() (unscoped, scoped int, err error) {
	for i, sc := range []bool{false, true} {
		w := pilottest.Synthetic(pilotServices, pilotPods, pilotNamespaces, sc)
		pc := xds.NewPushContext(w.Snapshot(1))
		pod := w.In.Pods[0]
		p, err := model.ParseNodeID(model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace))
		if err != nil {
			return 0, 0, err
		}
		res, err := pc.Generate(p, nil)
		if err != nil {
			return 0, 0, err
		}
		n := 0
		for _, t := range xds.TypeURLs {
			for _, r := range res.Items(t) {
				n += proto.Size(r)
			}
		}
		if i == 0 {
			unscoped = n
		} else {
			scoped = n
		}
	}
	return unscoped, scoped, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
