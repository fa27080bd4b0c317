package agent

import (
	"context"
	"net"
	"net/netip"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	originaldst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestInboundCaptureStaysInbound is the sidecar of a pod serving port 9080
// that also calls a 9080 service, as pilot configures it for Bookinfo: the
// capture listener 15006 restores the original destination with the
// original_dst listener filter, and an outbound listener 0.0.0.0_9080 (not
// bound) exists for the pod's own calls. A request captured on the way in
// must reach the local app through the inbound chain; before, the proxy
// treated the listener filter like use_original_dst and handed the
// connection to the outbound listener, so every meshed request to a 9080
// workload (all of Bookinfo) went back out instead of to the app.
func TestInboundCaptureStaysInbound(t *testing.T) {
	app := startUpstream(t, "app", nil)
	remote := startUpstream(t, "remote-9080-service", nil)
	passthrough := startUpstream(t, "passthrough", nil)
	inboundPort, outboundPort := freePort(t), freePort(t)
	captured := netip.MustParseAddrPort("198.18.0.10:9080")

	hcm := func(name, cluster string) *listenerv3.Filter {
		h := &hcmv3.HttpConnectionManager{
			StatPrefix: name,
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: name,
				VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{"*"},
					Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo(cluster)}}}}}},
			HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}},
		}
		return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}
	}
	listeners := []*listenerv3.Listener{
		{
			Name: "virtualInbound", Address: sockAddr("127.0.0.1", inboundPort), TrafficDirection: corev3.TrafficDirection_INBOUND,
			ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_dst",
				ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &originaldst.OriginalDst{})}}},
			FilterChains: []*listenerv3.FilterChain{
				{Name: "inbound_0.0.0.0_9080", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080)},
					Filters: []*listenerv3.Filter{hcm("inbound|9080||", "inbound|9080||")}},
			},
		},
		{
			Name: "virtualOutbound", Address: sockAddr("127.0.0.1", outboundPort), TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			UseOriginalDst: wrapperspb.Bool(true),
			FilterChains:   []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcm("virtualOutbound", "PassthroughCluster")}}},
		},
		{
			Name: "0.0.0.0_9080", Address: sockAddr("0.0.0.0", 9080), BindToPort: wrapperspb.Bool(false),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcm("0.0.0.0_9080", "outbound|9080||reviews")}}},
		},
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: testNode},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Listeners: listeners, Clusters: []*clusterv3.Cluster{
			staticCluster("inbound|9080||", app),
			staticCluster("outbound|9080||reviews", remote),
			staticCluster("PassthroughCluster", passthrough),
		}},
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	// Every accepted connection looks redirected to the pod's 9080, as the
	// iptables capture makes it; the kernel lookup itself is tested in capture.
	p, err := New(Options{Bootstrap: b, AdminAddress: "127.0.0.1:0",
		OriginalDst: func(net.Conn) (netip.AddrPort, bool) { return captured, true }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.Close() })

	resp, body := get(t, url(inboundPort, "/productpage"))
	if got := resp.Header.Get("X-Upstream"); resp.StatusCode != 200 || got != "app" {
		t.Fatalf("request captured inbound for %s: status %d, served by %q (%q); want 200 from the local app through inbound|9080||", captured, resp.StatusCode, got, body)
	}
	// use_original_dst still hands off: an outbound capture for a 9080
	// destination goes to the 9080 service, not to the passthrough. The
	// unbound 0.0.0.0_9080 has been through more than one config reconcile
	// by now, which used to retire its chains and reset every hand-off.
	// Another reconcile of the same snapshot, as after any config push.
	if err := p.Listeners.Reconcile(p.Store.Load()); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, url(outboundPort, "/reviews/0"))
	if got := resp.Header.Get("X-Upstream"); resp.StatusCode != 200 || got != "remote-9080-service" {
		t.Fatalf("request captured outbound for %s: status %d, served by %q (%q); want 200 from outbound|9080||reviews via the 0.0.0.0_9080 listener", captured, resp.StatusCode, got, body)
	}
}
