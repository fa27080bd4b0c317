package listener

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/proxy/config"
)

// An HttpConnectionManager field the proxy does not act on makes the
// listener a NACK naming the field, not a listener that ignores it.
func TestUnhonouredHCMFieldsAreRefusedByName(t *testing.T) {
	router, _ := anypb.New(&routerv3.Router{})
	for _, tc := range []struct {
		set  func(*hcmv3.HttpConnectionManager)
		want string
	}{
		{func(h *hcmv3.HttpConnectionManager) {
			h.PreserveExternalRequestId = true
			h.StreamIdleTimeout = durationpb.New(1)
		}, "fields preserve_external_request_id, stream_idle_timeout are not supported"},
		{func(h *hcmv3.HttpConnectionManager) {
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(10)}
		}, "common_http_protocol_options: field max_headers_count is not supported"},
	} {
		h := &hcmv3.HttpConnectionManager{StatPrefix: "in",
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{}},
			HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}}}
		tc.set(h)
		a, _ := anypb.New(h)
		l := &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}}}}}
		_, err := Compile(l, nil, &Env{Store: config.NewStore()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
}

// A Listener field the proxy does not act on is refused by name.
func TestUnhonouredListenerFieldsAreRefusedByName(t *testing.T) {
	l := &listenerv3.Listener{Name: "l", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}},
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(1024), Freebind: wrapperspb.Bool(true)}
	_, err := Compile(l, nil, &Env{Store: config.NewStore()})
	if err == nil || !strings.Contains(err.Error(), `listener "l": fields freebind, per_connection_buffer_limit_bytes are not supported`) {
		t.Errorf("got %v, want the two fields named", err)
	}
}

// A TcpProxy field the proxy does not act on is refused by name.
func TestUnhonouredTCPProxyFieldsAreRefusedByName(t *testing.T) {
	_, err := compileTCP(&tcpv3.TcpProxy{StatPrefix: "s", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"},
		MaxConnectAttempts: wrapperspb.UInt32(3)}, "tcp_proxy", &Env{}, &Listener{})
	if err == nil || !strings.Contains(err.Error(), "tcp_proxy: field max_connect_attempts is not supported") {
		t.Errorf("got %v", err)
	}
}
