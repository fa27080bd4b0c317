package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
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
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"mesh.dev/mesh/internal/freeport"
)

const testNode = "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local"

// controlPlane is a real go-control-plane ADS server on loopback.
type controlPlane struct {
	t     *testing.T
	cache cachev3.SnapshotCache
	srv   *grpc.Server
	addr  string
	mu    sync.Mutex
	nacks []string
	acks  map[string]string
	ver   int
}

func startControlPlane(t *testing.T, addr string) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil), acks: map[string]string{}}
	cp.listen(addr)
	return cp
}

func (cp *controlPlane) listen(addr string) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.addr = ln.Addr().String()
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			if r.GetErrorDetail() != nil {
				cp.nacks = append(cp.nacks, r.GetErrorDetail().GetMessage())
			} else if r.GetResponseNonce() != "" {
				cp.acks[r.GetTypeUrl()] = r.GetVersionInfo()
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			if r.GetErrorDetail() != nil {
				cp.nacks = append(cp.nacks, r.GetErrorDetail().GetMessage())
			}
			return nil
		},
	}
	xds := serverv3.NewServer(context.Background(), cp.cache, cb)
	cp.srv = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.srv, xds)
	go cp.srv.Serve(ln)
	cp.t.Cleanup(cp.srv.Stop)
}

// set publishes a new snapshot for the test node and returns its version.
func (cp *controlPlane) set(res map[resourcev3.Type][]types.Resource) string {
	cp.t.Helper()
	cp.mu.Lock()
	cp.ver++
	v := strconv.Itoa(cp.ver)
	cp.mu.Unlock()
	snap, err := cachev3.NewSnapshot(v, res)
	if err != nil {
		cp.t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), testNode, snap); err != nil {
		cp.t.Fatal(err)
	}
	return v
}

func (cp *controlPlane) nackMessages() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.nacks...)
}

func (cp *controlPlane) ackedVersion(t string) string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.acks[t]
}

// upstream is a named HTTP server that echoes who answered and what it saw.
type upstream struct {
	name string
	addr string
	hits sync.Map
	srv  *http.Server
}

func startUpstream(t *testing.T, name string, h http.HandlerFunc) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{name: name, addr: ln.Addr().String()}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Upstream", name)
			w.Header().Set("X-Seen-Path", r.URL.Path)
			w.Header().Set("X-Seen-Host", r.Host)
			for k, v := range r.Header {
				w.Header()["X-Req-"+k] = v
			}
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, name)
		}
	}
	u.srv = &http.Server{Handler: h}
	go u.srv.Serve(ln)
	t.Cleanup(func() { u.srv.Close() })
	return u
}

func (u *upstream) port() uint32 {
	_, p, _ := net.SplitHostPort(u.addr)
	n, _ := strconv.Atoi(p)
	return uint32(n)
}

// freePort is a port on 127.0.0.1 for a server the test starts later.
func freePort(t *testing.T) uint32 {
	return uint32(freeport.T(t))
}

func sockAddr(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
	}
}

func cla(name string, ups ...*upstream) *endpointv3.ClusterLoadAssignment {
	var eps []*endpointv3.LbEndpoint
	for _, u := range ups {
		eps = append(eps, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.0.1", u.port())}}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}}
}

func mustAny(t *testing.T, m interface{ ProtoReflect() protoreflectMessage }) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// httpListener is a listener with an HCM pointing at RDS route name, with extra filters before the router.
func httpListener(t *testing.T, name string, port uint32, route string, filters ...*hcmv3.HttpFilter) *listenerv3.Listener {
	filters = append(filters, &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}})
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: route,
			ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}},
		HttpFilters:    filters,
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: sockAddr("127.0.0.1", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}}}},
	}
}

func routeTo(cluster string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}
}

func startProxy(t *testing.T, xds string) *Proxy { return startProxyDelta(t, xds, false) }

func startProxyDelta(t *testing.T, xds string, delta bool) *Proxy {
	t.Helper()
	p, err := New(Options{XDSAddress: xds, Delta: delta, NodeID: testNode, AdminAddress: "127.0.0.1:0", XDSBackoff: [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.Close() })
	return p
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func url(port uint32, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, path) }
