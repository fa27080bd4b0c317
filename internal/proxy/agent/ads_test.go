package agent

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func basicResources(t *testing.T, port uint32, vhRoutes []*routev3.Route, clusters map[string][]*upstream) map[resourcev3.Type][]types.Resource {
	res := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {httpListener(t, "http", port, "local")},
		resourcev3.RouteType: {&routev3.RouteConfiguration{Name: "local", VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"}, Routes: vhRoutes}}}},
	}
	for name, ups := range clusters {
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], edsCluster(name))
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], cla(name, ups...))
	}
	return res
}

func TestADSRoutesTrafficAndWeights(t *testing.T) {
	a := startUpstream(t, "a", nil)
	b := startUpstream(t, "b", nil)
	cp := startControlPlane(t, "")
	port := freePort(t)
	cp.set(basicResources(t, port, []*routev3.Route{
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/split"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(80)}, {Name: "b", Weight: wrapperspb.UInt32(20)}}}}}}},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: routeTo("a")},
	}, map[string][]*upstream{"a": {a}, "b": {b}}))
	startProxy(t, cp.addr)
	eventually(t, "the proxy to route", func() bool {
		resp, err := client.Get(url(port, "/x"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	counts := map[string]int{}
	for i := 0; i < 1000; i++ {
		_, body := get(t, url(port, "/split"))
		counts[body]++
	}
	if pa := float64(counts["a"]) / 10; pa < 75 || pa > 85 {
		t.Fatalf("weighted 80/20 split gave a=%d b=%d of 1000; want a within 75..85%%", counts["a"], counts["b"])
	}
}

func TestNACKCarriesFieldAndKeepsLastGoodConfig(t *testing.T) {
	a := startUpstream(t, "a", nil)
	cp := startControlPlane(t, "")
	port := freePort(t)
	good := basicResources(t, port, []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: routeTo("a")}},
		map[string][]*upstream{"a": {a}})
	v1 := cp.set(good)
	p := startProxy(t, cp.addr)
	eventually(t, "ACK of v1", func() bool { return cp.ackedVersion(resourcev3.ClusterType) == v1 })
	bad := basicResources(t, port, []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: routeTo("a")}},
		map[string][]*upstream{"a": {a}})
	bad[resourcev3.ClusterType][0].(*clusterv3.Cluster).LbPolicy = clusterv3.Cluster_MAGLEV
	cp.set(bad)
	eventually(t, "a NACK", func() bool { return len(cp.nackMessages()) > 0 })
	msg := cp.nackMessages()[0]
	if !strings.Contains(msg, "lb_policy") || !strings.Contains(msg, "MAGLEV") || !strings.Contains(msg, `"a"`) {
		t.Fatalf("NACK detail %q should name the cluster, the field lb_policy and the value MAGLEV", msg)
	}
	if got := p.Store.Load().Version(resourcev3.ClusterType); got != v1 {
		t.Fatalf("after a NACK the proxy holds cluster version %q; want the last good %q", got, v1)
	}
	if resp, _ := get(t, url(port, "/")); resp.StatusCode != 200 {
		t.Fatalf("traffic after NACK: status %d", resp.StatusCode)
	}
}

func TestServesWhileControlPlaneIsDownAndResumes(t *testing.T) {
	a := startUpstream(t, "a", nil)
	b := startUpstream(t, "b", nil)
	cp := startControlPlane(t, "")
	port := freePort(t)
	routes := func(c string) []*routev3.Route {
		return []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: routeTo(c)}}
	}
	cp.set(basicResources(t, port, routes("a"), map[string][]*upstream{"a": {a}, "b": {b}}))
	p := startProxy(t, cp.addr)
	eventually(t, "routing to a", func() bool {
		resp, err := client.Get(url(port, "/"))
		return err == nil && resp.Header.Get("X-Upstream") == "a"
	})
	addr := cp.addr
	cp.srv.Stop()
	eventually(t, "the client to notice", func() bool { up, _, _ := p.XDS.Status(); return !up })
	for i := 0; i < 20; i++ {
		if resp, body := get(t, url(port, "/")); resp.StatusCode != 200 || body != "a" {
			t.Fatalf("while the control plane is down: status %d body %q", resp.StatusCode, body)
		}
	}
	cp2 := startControlPlane(t, addr)
	cp2.ver = 10
	cp2.set(basicResources(t, port, routes("b"), map[string][]*upstream{"a": {a}, "b": {b}}))
	eventually(t, "reconnect and the new route", func() bool {
		resp, err := client.Get(url(port, "/"))
		return err == nil && resp.Header.Get("X-Upstream") == "b"
	})
}

func TestConfigUpdateUnderLoadDropsNothing(t *testing.T) {
	t.Run("sotw", func(t *testing.T) { updateUnderLoad(t, false) })
	t.Run("delta", func(t *testing.T) { updateUnderLoad(t, true) })
}

func updateUnderLoad(t *testing.T, delta bool) {
	a := startUpstream(t, "a", nil)
	b := startUpstream(t, "b", nil)
	cp := startControlPlane(t, "")
	port := freePort(t)
	routes := func(c string) []*routev3.Route {
		return []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: routeTo(c)}}
	}
	cp.set(basicResources(t, port, routes("a"), map[string][]*upstream{"a": {a}}))
	startProxyDelta(t, cp.addr, delta)
	eventually(t, "routing", func() bool { resp, err := client.Get(url(port, "/")); return err == nil && resp.StatusCode == 200 })
	var failures, total atomic.Int64
	var seen sync.Map
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000 && ctx.Err() == nil; i++ {
				resp, err := client.Get(url(port, "/"))
				total.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
					if err == nil {
						resp.Body.Close()
					}
					continue
				}
				seen.Store(resp.Header.Get("X-Upstream"), true)
				resp.Body.Close()
			}
		}()
	}
	// Flip between clusters, add and remove one, while requests run.
	for i := 0; i < 6; i++ {
		time.Sleep(50 * time.Millisecond)
		target := "a"
		if i%2 == 0 {
			target = "b"
		}
		res := basicResources(t, port, routes(target), map[string][]*upstream{"a": {a}, "b": {b}})
		if i >= 3 {
			// Change the listener itself too, so its filter chains are replaced on the bound socket.
			l := res[resourcev3.ListenerType][0].(*listenerv3.Listener)
			l.StatPrefix = fmt.Sprintf("gen%d", i)
		}
		cp.set(res)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed during config updates", failures.Load(), total.Load())
	}
	if _, ok := seen.Load("b"); !ok {
		t.Fatal("no request reached cluster b: the updates did not take effect")
	}
}

// TestRedialsTheControlPlaneWithinItsBackoff: while the control plane
// accepts connections and drops them (a pilot restarting, a Service with
// no endpoint yet), the proxy keeps redialling at its own xDS backoff, not
// at gRPC's channel default (1 s growing to 120 s), during which it would
// fail every stream without dialling and stay unconfigured long after the
// control plane is back. Ten dials within the poll's 10 s take gRPC's
// default about 45 s.
func TestRedialsTheControlPlaneWithinItsBackoff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	addr := l.Addr().String()
	startProxy(t, addr)
	eventually(t, "ten dials of the unreachable control plane", func() bool { return dials.Load() >= 10 })
	l.Close()

	// And once it answers, the proxy is configured from it.
	port := freePort(t)
	a := startUpstream(t, "a", nil)
	cp := startControlPlane(t, addr)
	cp.set(basicResources(t, port, []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: routeTo("a")}},
		map[string][]*upstream{"a": {a}}))
	eventually(t, "routing to a from the control plane that came up", func() bool {
		resp, err := client.Get(url(port, "/"))
		return err == nil && resp.Header.Get("X-Upstream") == "a"
	})
}
