package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
)

// The pilot benchmark builds a synthetic mesh (1,000 services in 10
// namespaces, 5 pods each: 5,000 endpoints; every tenth service with
// subsets and a 90/10 split), feeds it to the xDS server directly (not
// through an API server), and connects 2,000 delta ADS clients over real
// gRPC on loopback. The clients run in a child process (this binary again,
// with pilotClientsEnv set), so the memory figure is pilot's alone. It
// times, from the model change to the last client having received and
// ACKed the new config:
//   - a full push: a DestinationRule and VirtualService change on a service
//     every proxy sees (new clusters, endpoints and routes for all 2,000);
//   - an endpoint-only push: one new pod (EDS only, to the proxies using it).
//
// Then, in a second mesh of the same size where a Sidecar limits each
// namespace to its own services, it times a VirtualService change for one
// host until every proxy that sees the host ACKed the new routes, and
// counts the proxies that were sent anything; the baseline is the same
// change with dependency tracking off (every proxy's config recomputed).
//
// The baseline is the same push to a single connected proxy, measured in the
// same run with the same model. Every wait is bounded, so the whole bench
// ends within a few minutes even when a target is missed.
func init() {
	if addr := os.Getenv(pilotClientsEnv); addr != "" {
		os.Exit(runPilotClients(addr))
	}
	register(Bench{Name: "pilot", Issue: 6, Run: benchPilot})
}

const (
	pilotServices   = 1000
	pilotPods       = 5
	pilotNamespaces = 10
	pilotProxies    = 2000
	pilotConns      = 20
	pilotClientsEnv = "MESH_BENCH_PILOT_CLIENTS" // set in the client child: pilot's address
	pilotPushWait   = 90 * time.Second           // longest a push may take before the bench gives up
	pilotBudget     = 5 * time.Minute            // the whole pilot bench
)

var pilotTypes = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}

// Indexes into pilotTypes.
const (
	pCDS = iota
	pEDS
	pLDS
	pRDS
)

type pilotRig struct {
	world   *pilottest.World
	server  *xds.Server
	grpc    *grpc.Server
	lis     net.Listener
	version uint64
	clients *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	closed  bool
	// offer, when set, takes the rig's changes instead of the xDS server's
	// Update (the rollout bench puts a rollout Manager in front).
	offer func(*model.Snapshot, model.Change)
	nodes []string // the clients' node ids, in the order given
}

// update hands a new snapshot to pilot.
func (r *pilotRig) update(snap *model.Snapshot, ch model.Change) {
	if r.offer != nil {
		r.offer(snap, ch)
		return
	}
	r.server.Update(snap, ch)
}

func newPilotRig(ctx context.Context, proxies int, scoped, rebuildAll bool) (*pilotRig, error) {
	r := &pilotRig{world: pilottest.Synthetic(pilotServices, pilotPods, pilotNamespaces, scoped)}
	r.server = xds.NewServer(ctx, nil, xds.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	r.server.RebuildAll = rebuildAll
	r.version++
	r.server.Update(r.world.Snapshot(r.version), model.Change{Full: true})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.lis = lis
	r.grpc = grpc.NewServer(grpc.MaxConcurrentStreams(uint32(proxies + 10)))
	r.server.Register(r.grpc)
	go func() { _ = r.grpc.Serve(lis) }()
	return r, nil
}

// asMeshPilot gives this process mesh-pilot's default soft memory limit
// (--memory-limit-mib), as the pilot benches measure pilot, and returns
// the function that lifts it again.
func asMeshPilot() (restore func()) {
	debug.SetMemoryLimit(pilot.DefaultMemoryLimitMiB << 20)
	return func() { debug.SetMemoryLimit(math.MaxInt64) }
}

// benchProxies is how many proxies the pilot benches connect: 2,000, or
// MESH_BENCH_PILOT_PROXIES for quick local runs (the report's figures are
// for 2,000).
func benchProxies() int {
	if n, err := strconv.Atoi(os.Getenv("MESH_BENCH_PILOT_PROXIES")); err == nil && n > 0 {
		return n
	}
	return pilotProxies
}

// startClients starts the client child process and hands it the node ids
// of proxies proxies.
func (r *pilotRig) startClients(ctx context.Context, proxies int) error {
	lis := r.lis
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r.clients = exec.CommandContext(ctx, self)
	r.clients.Env = append(os.Environ(), pilotClientsEnv+"="+lis.Addr().String())
	r.clients.Stderr = os.Stderr
	if r.in, err = r.clients.StdinPipe(); err != nil {
		return err
	}
	stdout, err := r.clients.StdoutPipe()
	if err != nil {
		return err
	}
	r.out = bufio.NewReader(stdout)
	if err := r.clients.Start(); err != nil {
		return fmt.Errorf("start the xDS clients: %w", err)
	}
	pods := r.world.In.Pods
	var b strings.Builder
	for i := 0; i < proxies; i++ {
		pod := pods[(i*len(pods))/proxies]
		id := model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace)
		r.nodes = append(r.nodes, id)
		fmt.Fprintln(&b, id)
	}
	b.WriteString("\n")
	if _, err := io.WriteString(r.in, b.String()); err != nil {
		return err
	}
	return nil
}

// call sends the client process one command and returns its answer.
func (r *pilotRig) call(cmd string) (string, error) {
	if cmd != "" {
		if _, err := io.WriteString(r.in, cmd+"\n"); err != nil {
			return "", fmt.Errorf("xDS clients: %w", err)
		}
	}
	line, err := r.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("xDS clients: %w", err)
	}
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "error") {
		return "", errors.New(line)
	}
	return line, nil
}

func (r *pilotRig) close() {
	if r.closed {
		return
	}
	r.closed = true
	if r.in != nil {
		_, _ = io.WriteString(r.in, "quit\n")
		_ = r.in.Close()
		_ = r.clients.Wait()
	}
	r.grpc.Stop()
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
	r.update(r.world.Snapshot(r.version), model.Change{Full: true})
}

// routeChange shifts svc-0's traffic split (its VirtualService only);
// svc-0 lives in ns-0.
func (r *pilotRig) routeChange() {
	vs := r.world.In.VirtualServices[0].DeepCopy()
	w := vs.Spec.Http[0].Route[1].Weight%50 + 5
	vs.Spec.Http[0].Route[0].Weight, vs.Spec.Http[0].Route[1].Weight = 100-w, w
	r.world.In.VirtualServices[0] = vs
	r.version++
	r.update(r.world.Snapshot(r.version), model.Change{Full: true})
}

// timeScopedPush times change until every client in namespace ns ACKed a
// new response of type t, and returns how many clients (in any
// namespace) were sent something new meanwhile and how many proxies'
// config pilot recomputed (its mesh_pilot_push_proxies_total).
func (r *pilotRig) timeScopedPush(change func(), ns string, t int) (took time.Duration, pushed, recomputed int, err error) {
	if _, err := r.call("mark " + strconv.Itoa(t)); err != nil {
		return 0, 0, 0, err
	}
	before := r.recomputed()
	start := time.Now()
	change()
	if _, err := r.call("waitns " + ns); err != nil {
		return 0, 0, 0, err
	}
	took = time.Since(start)
	out, err := r.call("pushed")
	if err != nil {
		return 0, 0, 0, err
	}
	pushed, err = strconv.Atoi(strings.TrimPrefix(out, "done "))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("xDS clients: %q", out)
	}
	return took, pushed, int(r.recomputed() - before), nil
}

// recomputed is pilot's count of proxies whose config it recomputed, all push kinds.
func (r *pilotRig) recomputed() float64 {
	n := 0.0
	for _, kind := range []string{"full", "config", "eds"} {
		var m dto.Metric
		if err := r.server.Metrics.ProxiesRegenerated.WithLabelValues(kind).Write(&m); err == nil {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// endpointChange adds a pod to svc-1.
func (r *pilotRig) endpointChange() {
	r.version++
	r.world.In.Pods = append(r.world.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-1-extra-%d", r.version), Namespace: "ns-1", Labels: map[string]string{"app": "svc-1", "version": "v1"}},
		Status:     corev1.PodStatus{PodIP: r.world.NextIP()},
	})
	r.update(r.world.Snapshot(r.version), model.Change{EndpointHosts: map[string]bool{"svc-1.ns-1.svc.cluster.local": true}})
}

// timePush times change until every client ACKed a new response of each of types.
func (r *pilotRig) timePush(change func(), types ...int) (time.Duration, error) {
	d, _, err := r.measurePush(change, types...)
	return d, err
}

// measurePush is timePush with the CPU time this process (pilot; the
// clients run in a child) spent meanwhile: unlike the wall time it hardly
// grows when other processes compete for the cores.
func (r *pilotRig) measurePush(change func(), types ...int) (took, cpu time.Duration, err error) {
	var ts []string
	for _, t := range types {
		ts = append(ts, strconv.Itoa(t))
	}
	if _, err := r.call("mark " + strings.Join(ts, ",")); err != nil {
		return 0, 0, err
	}
	start, cpu0 := time.Now(), processCPU()
	change()
	if _, err := r.call("wait"); err != nil {
		return 0, 0, err
	}
	return time.Since(start), processCPU() - cpu0, nil
}

// pilotMemory is the bench process's (pilot's, with the clients elsewhere)
// heap and stacks in use after garbage collection (twice, so buffers pooled
// by gRPC and unused since are dropped as the runtime would drop them), its
// resident set now and its peak resident set.
func pilotMemory() (inUse, rss, peak int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	inUse = int64(ms.HeapInuse + ms.StackInuse)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) != 3 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				rss = kb << 10
			case "VmHWM:":
				peak = kb << 10
			}
		}
	}
	slog.Info("pilot bench: memory", "heapInuse", ms.HeapInuse>>20, "heapIdle", ms.HeapIdle>>20, "heapReleased", ms.HeapReleased>>20, "rssMiB", rss>>20, "peakMiB", peak>>20)
	return inUse, rss, peak
}

// loadAverage is the 1-minute load average, to put the timings in context
// on a machine shared with other work.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func benchPilot(_ *Env) ([]Row, error) {
	load := loadAverage()
	ctx, cancel := context.WithTimeout(context.Background(), pilotBudget)
	defer cancel()
	defer asMeshPilot()()
	proxies := benchProxies()

	slog.Info("pilot bench: baseline with one proxy")
	one, err := newPilotRig(ctx, 1, false, false)
	if err != nil {
		return nil, err
	}
	if err := one.startClients(ctx, 1); err != nil {
		return nil, err
	}
	if _, err := one.call(""); err != nil { // "ready"
		return nil, err
	}
	oneFull, err := one.timePush(one.fullChange, pCDS, pEDS, pRDS)
	if err != nil {
		return nil, err
	}
	oneEDS, err := one.timePush(one.endpointChange, pEDS)
	if err != nil {
		return nil, err
	}
	one.close()

	slog.Info("pilot bench: connecting", "proxies", proxies)
	rig, err := newPilotRig(ctx, proxies, false, false)
	if err != nil {
		return nil, err
	}
	defer rig.close()
	baseHeap, baseRSS, _ := pilotMemory() // model built, nobody connected yet
	start, cpu0 := time.Now(), processCPU()
	if err := rig.startClients(ctx, proxies); err != nil {
		return nil, err
	}
	if _, err := rig.call(""); err != nil {
		return nil, fmt.Errorf("first push: %w", err)
	}
	connect, connectCPU := time.Since(start), processCPU()-cpu0
	slog.Info("pilot bench: all connected", "took", connect)
	if path := os.Getenv("MESH_BENCH_PILOT_CPUPROFILE"); path != "" {
		// Profiles the pushes only, not the connection storm.
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
	var fulls, edss, fullCPUs, edsCPUs []time.Duration
	for i := 0; i < 3; i++ {
		d, c, err := rig.measurePush(rig.fullChange, pCDS, pEDS, pRDS)
		if err != nil {
			return nil, fmt.Errorf("full push: %w", err)
		}
		fulls, fullCPUs = append(fulls, d), append(fullCPUs, c)
		slog.Info("pilot bench: full push", "took", d, "cpu", c)
		d, c, err = rig.measurePush(rig.endpointChange, pEDS)
		if err != nil {
			return nil, fmt.Errorf("endpoint push: %w", err)
		}
		edss, edsCPUs = append(edss, d), append(edsCPUs, c)
		slog.Info("pilot bench: endpoint push", "took", d, "cpu", c)
	}
	heap, rss, peak := pilotMemory()
	if path := os.Getenv("MESH_BENCH_PILOT_MEMPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}

	unscoped, scoped, err := configBytes()
	if err != nil {
		return nil, err
	}
	rig.close() // its memory is measured; the next mesh needs the room

	slog.Info("pilot bench: Sidecar-scoped mesh", "proxies", proxies)
	srig, err := newPilotRig(ctx, proxies, true, false)
	if err != nil {
		return nil, err
	}
	defer srig.close()
	if err := srig.startClients(ctx, proxies); err != nil {
		return nil, err
	}
	if _, err := srig.call(""); err != nil {
		return nil, fmt.Errorf("first push, scoped mesh: %w", err)
	}
	var tracked, untracked []time.Duration
	var pushed, recomputed [2]int // most over the runs: tracking on, off
	for i := 0; i < 3; i++ {
		for j, all := range []bool{false, true} {
			srig.server.RebuildAll = all
			d, p, rc, err := srig.timeScopedPush(srig.routeChange, "ns-0", pRDS)
			if err != nil {
				return nil, fmt.Errorf("route change, scoped mesh: %w", err)
			}
			slog.Info("pilot bench: route change in a scoped mesh", "rebuildAll", all, "took", d, "pushed", p, "recomputed", rc)
			if all {
				untracked = append(untracked, d)
			} else {
				tracked = append(tracked, d)
			}
			pushed[j], recomputed[j] = max(pushed[j], p), max(recomputed[j], rc)
		}
	}
	sees := 0 // proxies in ns-0, the only namespace that sees svc-0
	for i := 0; i < proxies; i++ {
		if pod := srig.world.In.Pods[(i*len(srig.world.In.Pods))/proxies]; pod.Namespace == "ns-0" {
			sees++
		}
	}
	scopedHow := fmt.Sprintf("%d services in %d namespaces, a Sidecar per namespace limiting egress to ./*; delta ADS, clients in a child process", pilotServices, pilotNamespaces)
	full, edsPush := median(fulls), median(edss)
	cmd := "go run ./bench -only pilot"
	how := fmt.Sprintf("delta ADS, clients in a child process; synthetic model fed directly, no API server; mesh-pilot's default soft memory limit %d MiB; 1-min load average %s at start, %s at end", pilot.DefaultMemoryLimitMiB, load, loadAverage())
	base := "same push to 1 proxy"
	return []Row{
		{Figure: fmt.Sprintf("pilot: first config to %d proxies, connect to all ACKed (%.1f MiB each; %s)", proxies, float64(unscoped)/(1<<20), how),
			Value: connect.Seconds(), Unit: "s", Command: cmd},
		{Figure: fmt.Sprintf("pilot: full push (CDS+EDS+RDS) to %d proxies, change to all ACKed, median of %d (%s)", proxies, len(fulls), how),
			Value: full.Seconds(), Unit: "s", Baseline: base, BaselineValue: oneFull.Seconds(),
			Target: "< 5 s", Met: Check(full < 5*time.Second), Command: cmd},
		{Figure: fmt.Sprintf("pilot: endpoint-only push (EDS) to %d proxies, change to all ACKed, median of %d (%s)", proxies, len(edss), how),
			Value: edsPush.Seconds(), Unit: "s", Baseline: base, BaselineValue: oneEDS.Seconds(),
			Target: "< 1 s", Met: Check(edsPush < time.Second), Command: cmd},
		{Figure: fmt.Sprintf("pilot: CPU time (user+sys) of pilot for the first config to %d proxies, connect to all ACKed (the wall time's figures grow with the machine's load, this hardly does)", proxies),
			Value: connectCPU.Seconds(), Unit: "s", Command: cmd},
		{Figure: fmt.Sprintf("pilot: CPU time (user+sys) of pilot per full push to %d proxies, median of %d", proxies, len(fullCPUs)),
			Value: median(fullCPUs).Seconds(), Unit: "s", Command: cmd},
		{Figure: fmt.Sprintf("pilot: CPU time (user+sys) of pilot per endpoint-only push to %d proxies, median of %d", proxies, len(edsCPUs)),
			Value: median(edsCPUs).Seconds(), Unit: "s", Command: cmd},
		{Figure: fmt.Sprintf("pilot: heap+stacks in use after GC with %d proxies connected, after the pushes (the bench process is pilot alone: clients run in a child; includes the synthetic Kubernetes objects, as informer caches would)", proxies),
			Value: MiB(heap), Unit: "MiB", Baseline: "same process, model built, no proxy connected yet", BaselineValue: MiB(baseHeap),
			Target: "< 1024 MiB", Met: Check(MiB(heap) < 1024), Command: cmd},
		{Figure: fmt.Sprintf("pilot: resident set (VmRSS) with %d proxies connected, after the pushes", proxies),
			Value: MiB(rss), Unit: "MiB", Baseline: "same process, no proxy connected", BaselineValue: MiB(baseRSS),
			Target: "< 1024 MiB", Met: Check(MiB(rss) < 1024), Command: cmd},
		{Figure: fmt.Sprintf("pilot: peak resident set (VmHWM) over the run, %d proxies connecting at once included", proxies),
			Value: MiB(peak), Unit: "MiB", Baseline: "same process, no proxy connected", BaselineValue: MiB(baseRSS),
			Target: "< 1024 MiB", Met: Check(MiB(peak) < 1024), Command: cmd},
		{Figure: "pilot: config bytes per sidecar (CDS+EDS+LDS+RDS, encoded), Sidecar egress ./* (own namespace only)", Value: float64(scoped) / 1024, Unit: "KiB",
			Baseline: "no Sidecar: all 1,000 services", BaselineValue: float64(unscoped) / 1024, Target: "smaller with scoping", Met: Check(scoped < unscoped), Command: cmd},
		{Figure: fmt.Sprintf("pilot: VirtualService change for one host (svc-0), Sidecar-scoped mesh, %d proxies, change to every proxy that sees the host (%d) ACKed, median of %d (%s; the full push above, same run: %.2f s)", proxies, sees, len(tracked), scopedHow, full.Seconds()),
			Value: median(tracked).Seconds(), Unit: "s", Baseline: "same change, dependency tracking off (every proxy's config recomputed)", BaselineValue: median(untracked).Seconds(),
			Command: cmd},
		{Figure: fmt.Sprintf("pilot: proxies whose config was recomputed for that VirtualService change, of %d connected (%d see the host; proxies sent anything: %d, %d with tracking off; most over %d runs)", proxies, sees, pushed[0], pushed[1], len(tracked)),
			Value: float64(recomputed[0]), Unit: "proxies", Baseline: "same change, dependency tracking off", BaselineValue: float64(recomputed[1]),
			Target: "only affected proxies", Met: Check(recomputed[0] == sees && pushed[0] == sees), Command: cmd},
	}, nil
}

// configBytes is the encoded size of one sidecar's resources without and
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

// runPilotClients is the client child: it reads node ids (one a line, up to
// a blank line) from stdin, connects a delta ADS client for each to addr,
// prints "ready" once all have ACKed every type, then answers commands:
// "mark 0,1,3" remembers the response counts of those types, "wait" waits
// until every client ACKed a newer response of each marked type and prints
// "done", "waitns NS" does the same for the clients in namespace NS,
// "waitids ID ID ..." for the clients of those node ids, "pushed" prints
// "done N", N the clients (of all) sent anything new since the mark;
// "quit" ends.
func runPilotClients(addr string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	var nodes []string
	for in.Scan() && in.Text() != "" {
		nodes = append(nodes, in.Text())
	}
	fail := func(err error) int {
		fmt.Printf("error %v\n", err)
		return 1
	}
	nconn := min(pilotConns, len(nodes))
	var conns []*grpc.ClientConn
	for i := 0; i < nconn; i++ {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	counts := make([][4]atomic.Int64, len(nodes))
	for i, node := range nodes {
		c := &pilottest.DeltaClient{NodeID: node, OnApply: func(t string, _ int) {
			for j, u := range pilotTypes {
				if u == t {
					counts[i][j].Add(1)
				}
			}
		}}
		if err := c.Start(ctx, conns[i%nconn]); err != nil {
			return fail(err)
		}
	}
	snapshot := func() [][4]int64 {
		out := make([][4]int64, len(counts))
		for i := range counts {
			for t := range counts[i] {
				out[i][t] = counts[i][t].Load()
			}
		}
		return out
	}
	waitAll := func(before [][4]int64, types []int, only func(int) bool) error {
		deadline := time.Now().Add(pilotPushWait)
		for {
			behind := 0
			for i := range counts {
				if only != nil && !only(i) {
					continue
				}
				for _, t := range types {
					if counts[i][t].Load() <= before[i][t] {
						behind++
						break
					}
				}
			}
			if behind == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d proxies not ACKed after %v", behind, len(counts), pilotPushWait)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if err := waitAll(make([][4]int64, len(nodes)), []int{pCDS, pEDS, pLDS, pRDS}, nil); err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	var marked [][4]int64
	var types []int
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "mark":
			types = types[:0]
			for _, f := range strings.Split(arg, ",") {
				t, _ := strconv.Atoi(f)
				types = append(types, t)
			}
			marked = snapshot()
			fmt.Println("ok")
		case "wait":
			if err := waitAll(marked, types, nil); err != nil {
				fmt.Printf("error %v\n", err)
				continue
			}
			fmt.Println("done")
		case "waitns":
			if err := waitAll(marked, types, func(i int) bool { return strings.Contains(nodes[i], "."+arg+"~") }); err != nil {
				fmt.Printf("error %v\n", err)
				continue
			}
			fmt.Println("done")
		case "waitids":
			want := map[string]bool{}
			for _, id := range strings.Fields(arg) {
				want[id] = true
			}
			known := 0
			for _, n := range nodes {
				if want[n] {
					known++
				}
			}
			if known != len(want) {
				fmt.Printf("error waitids: %d of %d node ids are not clients here\n", len(want)-known, len(want))
				continue
			}
			if err := waitAll(marked, types, func(i int) bool { return want[nodes[i]] }); err != nil {
				fmt.Printf("error %v\n", err)
				continue
			}
			fmt.Println("done")
		case "pushed":
			// Gives any other push a moment to land first.
			time.Sleep(500 * time.Millisecond)
			pushed := 0
			for i := range counts {
				for t := range counts[i] {
					if counts[i][t].Load() > marked[i][t] {
						pushed++
						break
					}
				}
			}
			fmt.Printf("done %d\n", pushed)
		case "quit":
			return 0
		}
	}
	return 0
}
