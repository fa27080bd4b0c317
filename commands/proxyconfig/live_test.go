package proxyconfig

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/configdump"
	"mesh.dev/mesh/internal/freeport"
	"mesh.dev/mesh/internal/proxy/agent"
)

const liveNode = "sidecar~127.0.0.1~reviews-v1-0.default~default.svc.cluster.local"

// TestLiveProxyDumpChangeDiff runs mesh-proxy in-process against a real
// go-control-plane ADS server on loopback, reads its config through the
// admin API, changes the config over xDS and diffs before against after.
func TestLiveProxyDumpChangeDiff(t *testing.T) {
	cp := startLiveControlPlane(t)
	publish := cp.publish
	reviews, ratings, listenPort := cp.reviews, cp.ratings, cp.listenPort
	publish("1", 10*time.Second, true)

	p, err := agent.New(agent.Options{XDSAddress: cp.addr, NodeID: liveNode, AdminAddress: "127.0.0.1:0", Level: new(slog.LevelVar)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.Close() })
	admin := p.AdminAddr()

	// Routes come over RDS after the listener that names them, so the first
	// snapshot is whole only once route 9080 itself is in the dump.
	waitFor(t, admin, "the first snapshot", func(dump string) bool {
		d, err := configdump.Parse([]byte(dump), configdump.Options{})
		if err != nil {
			return false
		}
		has := func(k configdump.Kind, name string) bool {
			for _, r := range d.Of(k) {
				if strings.Contains(r.Name, name) {
					return true
				}
			}
			return false
		}
		return has(configdump.KindCluster, "ratings.default") && has(configdump.KindListener, "127.0.0.1_9080") && has(configdump.KindRoute, "9080")
	})
	out, _, err := run(t, "", "cluster", "--admin-address", admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"reviews.default.svc.cluster.local   9080   -        outbound    EDS",
		"ratings.default.svc.cluster.local   9080   v1       outbound    EDS    ratings.default",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster table from the live proxy lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, "", "listener", "--admin-address", admin)
	if err != nil || !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", listenPort)) || !strings.Contains(out, "Route: 9080") {
		t.Errorf("listener table from the live proxy (%v):\n%s", err, out)
	}
	before, _, err := run(t, "", "dump", "--admin-address", admin)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(t.TempDir(), "before.json")
	if err := os.WriteFile(saved, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, "", "diff", saved, "admin://"+admin); exitCode(err) != 0 {
		t.Fatalf("nothing changed yet, diff exit %d (%v):\n%s", exitCode(err), err, out)
	}

	publish("2", 3*time.Second, false)
	waitFor(t, admin, "the second snapshot", func(dump string) bool {
		return !strings.Contains(dump, "127.0.0.1_9080") && strings.Contains(dump, `"3s"`)
	})
	out, _, err = run(t, "", "diff", saved, "admin://"+admin)
	if exitCode(err) != 1 {
		t.Fatalf("diff after an xDS change: exit %d (%v), want 1", exitCode(err), err)
	}
	for _, want := range []string{
		"~ changed cluster " + reviews,
		`connect_timeout: "10s" → "3s"`,
		"- removed listener 127.0.0.1_9080",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, ratings) {
		t.Errorf("unchanged cluster reported:\n%s", out)
	}

	// Log levels: --level LEVEL sets every one of the proxy's loggers (column widths follow the longest name).
	out, _, err = run(t, "", "log", "--admin-address", admin, "--level", "debug")
	if err != nil || !strings.Contains(strings.Join(strings.Fields(out), " "), "http debug http2 debug") {
		t.Errorf("log --level debug (%v):\n%s", err, out)
	}
}

// liveControlPlane is a go-control-plane ADS server on loopback serving two
// clusters, their endpoints, a route and (optionally) a listener to liveNode.
type liveControlPlane struct {
	t                *testing.T
	addr             string
	cache            cachev3.SnapshotCache
	reviews, ratings string
	listenPort       uint32
	upstreamPort     uint32
}

func startLiveControlPlane(t *testing.T) *liveControlPlane {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp := &liveControlPlane{
		t: t, addr: ln.Addr().String(), cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil),
		reviews:    "outbound|9080||reviews.default.svc.cluster.local",
		ratings:    "outbound|9080|v1|ratings.default.svc.cluster.local",
		listenPort: freePort(t), upstreamPort: freePort(t),
	}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(context.Background(), cp.cache, nil))
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return cp
}

// publish sets the snapshot: the reviews cluster's connect timeout, and whether the listener exists.
func (cp *liveControlPlane) publish(version string, timeout time.Duration, withListener bool) {
	t := cp.t
	res := map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  {liveCluster(cp.reviews, timeout, ""), liveCluster(cp.ratings, time.Second, "ratings")},
		resourcev3.EndpointType: {liveCLA(cp.reviews, cp.upstreamPort), liveCLA(cp.ratings, cp.upstreamPort)},
		resourcev3.RouteType:    {liveRoute("9080", cp.reviews)},
		resourcev3.ListenerType: nil,
	}
	if withListener {
		res[resourcev3.ListenerType] = []types.Resource{liveListener(t, "127.0.0.1_9080", cp.listenPort, "9080")}
	}
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), liveNode, snap); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls the admin API's config dump until cond holds.
func waitFor(t *testing.T, admin, what string, cond func(string) bool) {
	t.Helper()
	c, err := adminclient.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		b, err := c.ConfigDump(context.Background(), true)
		if err == nil {
			last = string(b)
			if cond(last) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last dump:\n%.3000s", what, last)
}

// freePort is a port on 127.0.0.1 for a server the test starts later.
func freePort(t *testing.T) uint32 {
	return uint32(freeport.T(t))
}

func sock(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

var ads = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}

func liveCluster(name string, timeout time.Duration, dr string) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(timeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: proto.Clone(ads).(*corev3.ConfigSource)},
	}
	if dr != "" {
		md, err := structOf(map[string]any{"config": "/apis/networking.istio.io/v1alpha3/namespaces/default/destination-rule/" + dr})
		if err != nil {
			panic(err)
		}
		c.Metadata = &corev3.Metadata{FilterMetadata: md}
	}
	return c
}

func liveCLA(name string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sock("127.0.0.1", port)}}}}}}}
}

func liveRoute(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: "reviews.default.svc.cluster.local:9080", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		}},
	}}}
}

func liveListener(t *testing.T, name string, port uint32, route string) *listenerv3.Listener {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		t.Fatal(err)
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: route, ConfigSource: proto.Clone(ads).(*corev3.ConfigSource)}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: sock("127.0.0.1", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}},
	}
}

func structOf(m map[string]any) (map[string]*structpb.Struct, error) {
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, err
	}
	return map[string]*structpb.Struct{"istio": s}, nil
}
