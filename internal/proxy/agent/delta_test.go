package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

func TestDeltaADS(t *testing.T) {
	a := startUpstream(t, "a", nil)
	b := startUpstream(t, "b", nil)
	cp := startControlPlane(t, "")
	port := freePort(t)
	routes := func(c string) []*routev3.Route { return []*routev3.Route{{Match: prefix("/"), Action: routeTo(c)}} }
	cp.set(basicResources(t, port, routes("a"), map[string][]*upstream{"a": {a}, "b": {b}}))
	p, err := New(Options{XDSAddress: cp.addr, Delta: true, NodeID: testNode, AdminAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	eventually(t, "delta config to route to a", func() bool {
		resp, err := client.Get(url(port, "/"))
		return err == nil && resp.Header.Get("X-Upstream") == "a"
	})
	// Removing cluster b arrives as a delta removal.
	cp.set(basicResources(t, port, routes("a"), map[string][]*upstream{"a": {a}}))
	eventually(t, "cluster b removed", func() bool { return p.Store.Load().Cluster("b") == nil })
	// A resource the proxy cannot honour is NACKed over delta too.
	bad := basicResources(t, port, routes("a"), map[string][]*upstream{"a": {a}})
	bad[resourcev3.ClusterType][0].(*clusterv3.Cluster).ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
	cp.set(bad)
	eventually(t, "delta NACK", func() bool {
		for _, m := range cp.nackMessages() {
			if strings.Contains(m, "LOGICAL_DNS") {
				return true
			}
		}
		return false
	})
	time.Sleep(50 * time.Millisecond)
	if resp, body := get(t, url(port, "/")); resp.StatusCode != 200 || body != "a" {
		t.Fatalf("after a delta NACK: %d %q", resp.StatusCode, body)
	}
}
