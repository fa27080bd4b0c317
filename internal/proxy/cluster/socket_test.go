package cluster

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

func tsock(t *testing.T, sni string) *corev3.TransportSocket {
	t.Helper()
	if sni == "" {
		a, _ := anypb.New(&rawbufferv3.RawBuffer{})
		return &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
	}
	a, err := anypb.New(&tlsv3.UpstreamTlsContext{Sni: sni})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

func labels(kv ...string) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Fields[kv[i]] = structpb.NewStringValue(kv[i+1])
	}
	return s
}

func socketMeta(kv ...string) *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{socketMatchFilter: labels(kv...)}}
}

func TestTransportSocketSelection(t *testing.T) {
	ep := func(port uint32, md *corev3.Metadata) *endpointv3.LbEndpoint {
		return &endpointv3.LbEndpoint{Metadata: md, HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
			Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}}}
	}
	c := staticCluster(t, func(pc *clusterv3.Cluster) {
		pc.TransportSocket = tsock(t, "default.example")
		pc.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
			{Name: "istio-v2", Match: labels("tlsMode", "istio", "version", "v2"), TransportSocket: tsock(t, "v2.example")},
			{Name: "istio", Match: labels("tlsMode", "istio"), TransportSocket: tsock(t, "istio.example")},
			{Name: "plain", Match: labels("tlsMode", "disabled"), TransportSocket: tsock(t, "")},
		}
		pc.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
			{LbEndpoints: []*endpointv3.LbEndpoint{
				ep(1, socketMeta("tlsMode", "istio", "version", "v2")), // both istio matches apply: the first wins
				ep(2, socketMeta("tlsMode", "istio", "version", "v1")),
				ep(3, socketMeta("tlsMode", "disabled")),
				ep(4, socketMeta("tlsMode", "other")), // no match: the cluster's transport_socket
				ep(5, nil),
				ep(6, &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": labels("tlsMode", "istio")}}), // wrong filter
			}},
			{Metadata: socketMeta("tlsMode", "disabled"), LbEndpoints: []*endpointv3.LbEndpoint{
				ep(7, nil),                            // takes the locality's metadata
				ep(8, socketMeta("tlsMode", "istio")), // its own metadata wins over the locality's
			}},
		}}
	})
	want := map[string]struct{ name, sni string }{
		"127.0.0.1:1": {"istio-v2", "v2.example"},
		"127.0.0.1:2": {"istio", "istio.example"},
		"127.0.0.1:3": {"plain", ""},
		"127.0.0.1:4": {"default", "default.example"},
		"127.0.0.1:5": {"default", "default.example"},
		"127.0.0.1:6": {"default", "default.example"},
		"127.0.0.1:7": {"plain", ""},
		"127.0.0.1:8": {"istio", "istio.example"},
	}
	hosts := c.Hosts()
	if len(hosts) != len(want) {
		t.Fatalf("%d hosts, want %d", len(hosts), len(want))
	}
	for _, h := range hosts {
		w := want[h.Addr]
		s := c.sockOf(h)
		sni := ""
		if s.tls != nil {
			sni = s.tls.ServerName
		}
		if got := c.TransportSocketName(h); got != w.name || sni != w.sni {
			t.Errorf("%s: socket %q (sni %q), want %q (sni %q)", h.Addr, got, sni, w.name, w.sni)
		}
	}
}
