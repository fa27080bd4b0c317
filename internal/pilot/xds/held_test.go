package xds

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var edsIdx = typeIndexOf(resourcev3.EndpointType)

// heldClient is a delta EDS client that keeps what it was sent, as Envoy
// does: resources it did not ask for are ignored, removed ones dropped, and
// an unsubscribed name dropped at once unless the stream is wildcard.
type heldClient struct {
	t        *testing.T
	st       discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	wildcard bool
	subs     map[string]bool
	holds    map[string]string
	got      int // resources received
	sent     int64
	taken    *atomic.Int64
}

// countingCache counts the requests the server has handed to the cache, so a
// client can wait until each of its requests has been taken in.
type countingCache struct {
	*viewCache
	taken atomic.Int64
}

func (c *countingCache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	defer c.taken.Add(1)
	return c.viewCache.CreateDeltaWatch(req, sub, ch)
}

// startViewCache serves c over a real go-control-plane ADS server on loopback.
func startViewCache(t *testing.T, c *countingCache) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(context.Background(), c, nil))
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func dialHeld(t *testing.T, conn *grpc.ClientConn, taken *atomic.Int64, node string, wildcard bool, subs []string, initial map[string]string) *heldClient {
	t.Helper()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &heldClient{t: t, st: st, wildcard: wildcard, subs: map[string]bool{}, holds: maps.Clone(initial), taken: taken}
	if c.holds == nil {
		c.holds = map[string]string{}
	}
	req := &discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: resourcev3.EndpointType, InitialResourceVersions: initial}
	if wildcard {
		req.ResourceNamesSubscribe = []string{"*"}
	}
	for _, n := range subs {
		c.subs[n] = true
		req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
	}
	c.send(req)
	return c
}

func (c *heldClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if err := c.st.Send(req); err != nil {
		c.t.Fatal(err)
	}
	c.sent++
}

// taken waits until the server has handed every request sent so far to the
// cache. The walk's steps are then ordered against pilot's pushes: without
// it, a response made before an unsubscribe can be read after the client
// subscribed again, a race of the protocol itself whichever map is kept.
func (c *heldClient) takenIn(step string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.taken.Load() < c.sent {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: the server took in %d of %d requests", step, c.taken.Load(), c.sent)
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *heldClient) wants(name string) bool { return c.wildcard || c.subs[name] }

// want is what the client should hold of g.
func (c *heldClient) want(g *typeGen) map[string]string {
	out := map[string]string{}
	g.each(func(it *item) bool {
		if c.wants(it.name) {
			out[it.name] = it.version
		}
		return true
	})
	return out
}

// settle receives and ACKs responses until the client holds what it should of g.
func (c *heldClient) settle(g *typeGen, step string) {
	c.t.Helper()
	want := c.want(g)
	deadline := time.Now().Add(20 * time.Second)
	for !maps.Equal(c.holds, want) {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: the client holds %v, want %v", step, c.holds, want)
		}
		resp, err := c.st.Recv()
		if err != nil {
			c.t.Fatalf("%s: %v (the client holds %v, want %v)", step, err, c.holds, want)
		}
		for _, r := range resp.Resources {
			c.got++
			if c.wants(r.Name) {
				c.holds[r.Name] = r.Version
			}
		}
		for _, n := range resp.RemovedResources {
			delete(c.holds, n)
		}
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce})
	}
	c.takenIn(step)
}

// walkConfig is the twelve load assignments a random walk pushes: each
// present or not, at some content.
type walkConfig struct {
	rng     *rand.Rand
	present [12]bool
	content [12]int
}

func newWalkConfig(rng *rand.Rand) *walkConfig {
	w := &walkConfig{rng: rng}
	for i := range w.present {
		w.present[i] = rng.IntN(4) != 0
	}
	return w
}

// next changes about one resource in five, adds or removes about one in
// eight, and returns the generation, split into a base and an own layer
// half of the time.
func (w *walkConfig) next() *typeGen {
	rng := w.rng
	var its []*item
	for i := range w.present {
		if rng.IntN(8) == 0 {
			w.present[i] = !w.present[i]
		}
		if rng.IntN(5) == 0 {
			w.content[i]++
		}
		if !w.present[i] {
			continue
		}
		name := fmt.Sprintf("r%d", i)
		its = append(its, newItem(name, &endpointv3.ClusterLoadAssignment{ClusterName: name,
			Endpoints: make([]*endpointv3.LocalityLbEndpoints, w.content[i]%5)}))
	}
	if len(its) > 2 && rng.IntN(2) == 0 {
		cut := rng.IntN(len(its))
		base := newTypeGen(resourcev3.EndpointType, fmt.Sprintf("base-%d", rng.Uint64()), its[:cut])
		return newLayeredGen(resourcev3.EndpointType, fmt.Sprintf("v-%d", rng.Uint64()), base, its[cut:])
	}
	return newTypeGen(resourcev3.EndpointType, fmt.Sprintf("v-%d", rng.Uint64()), its)
}

// A delta stream ends every step of a random walk of pushes, subscribes and
// unsubscribes holding exactly what it asked for at the latest versions,
// though pilot keeps no map of what the stream holds while it holds its
// whole generation.
func TestDeltaStreamsHoldWhatTheyWereSent(t *testing.T) {
	for _, wildcard := range []bool{true, false} {
		t.Run(fmt.Sprintf("wildcard=%v", wildcard), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(fmt.Sprint(wildcard)))))
			cc := &countingCache{viewCache: newViewCache(1 << 40)}
			vc := cc.viewCache
			conn := startViewCache(t, cc)
			cfg := newWalkConfig(rng)
			g := cfg.next()
			var v view
			v[edsIdx] = g
			vc.setView("n", v)
			var first []string
			if !wildcard {
				first = []string{"r0", "r1", "r2", "r3", "r4", "r5"}
			}
			c := dialHeld(t, conn, &cc.taken, "n", wildcard, first, nil)
			c.settle(g, "first response")
			fullSeen := false
			for step := range 300 {
				name := fmt.Sprintf("r%d", rng.IntN(12))
				switch k := rng.IntN(10); {
				case k < 4:
					g = cfg.next()
					v[edsIdx] = g
					vc.setView("n", v)
				case k < 7 && !c.subs[name]:
					c.subs[name] = true
					c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{name}})
				case c.subs[name]:
					delete(c.subs, name)
					if !wildcard {
						delete(c.holds, name)
					}
					c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesUnsubscribe: []string{name}})
				}
				c.takenIn(fmt.Sprintf("step %d", step))
				c.settle(g, fmt.Sprintf("step %d", step))
				e := vc.entry("n")
				e.mu.Lock()
				for _, st := range e.sent {
					s := st[edsIdx]
					if s.full {
						fullSeen = true
						if s.has != nil || len(s.marker) != 0 {
							t.Errorf("step %d: a stream holding its whole generation keeps %d names and a marker of %d", step, len(s.has), len(s.marker))
						}
					}
				}
				e.mu.Unlock()
			}
			if wildcard && !fullSeen {
				t.Fatal("a wildcard stream was never known to hold its whole generation: pilot kept a map for it throughout")
			}
		})
	}
}

// A proxy reconnecting with the versions it holds is sent only what
// differs, and what it holds that pilot no longer has is removed.
func TestReconnectedStreamSendsOnlyWhatDiffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cc := &countingCache{viewCache: newViewCache(1 << 40)}
	vc := cc.viewCache
	conn := startViewCache(t, cc)
	var its []*item
	for i := range 10 {
		name := fmt.Sprintf("r%d", i)
		its = append(its, newItem(name, &endpointv3.ClusterLoadAssignment{ClusterName: name}))
	}
	g := newTypeGen(resourcev3.EndpointType, "v1", its)
	var v view
	v[edsIdx] = g
	vc.setView("n", v)
	initial := map[string]string{}
	for _, it := range its {
		initial[it.name] = it.version
	}
	initial["r3"] = "stale"
	initial["gone"] = "x"
	c := dialHeld(t, conn, &cc.taken, "n", true, nil, initial)
	c.settle(g, "reconnect")
	if c.got != 1 {
		t.Fatalf("the reconnected stream was sent %d resources, want only r3's new version", c.got)
	}
	if _, ok := c.holds["gone"]; ok {
		t.Fatal("a resource pilot no longer has was not removed on reconnect")
	}
	// Then it moves with pushes like any stream.
	g2 := newWalkConfig(rng).next()
	v[edsIdx] = g2
	vc.setView("n", v)
	c.settle(g2, "push after the reconnect")
}
