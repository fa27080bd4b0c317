package xds

import (
	"slices"

	udpatype "github.com/cncf/xds/go/udpa/type/v1"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/structpb"
	mxpb "istio.io/api/envoy/config/filter/network/metadata_exchange"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/telemetry"
)

// Istio's metrics need two filters on every HTTP connection manager, as
// istiod writes them: istio.metadata_exchange first (the peer metadata
// filter: a sidecar's inbound side reads the client's metadata from the
// request and answers with its own; outbound sides and gateways send
// theirs and read the server's from the response) and istio.stats last
// before the router. TCP proxies get the stats network filter, inbound
// ones behind the TCP metadata exchange (istio-peer-exchange over mTLS).
const (
	statsFilterName  = "istio.stats"
	mxFilterName     = "istio.metadata_exchange"
	peerMetadataURL  = "type.googleapis.com/io.istio.http.peer_metadata.Config"
	peerExchangeALPN = "istio-peer-exchange"
)

// peerMetadataFilter is the HTTP peer metadata filter of a listener class.
func peerMetadataFilter(c telemetry.Class) *hcmv3.HttpFilter {
	method := []any{map[string]any{"istio_headers": map[string]any{}}}
	discovery := []any{map[string]any{"istio_headers": map[string]any{}}, map[string]any{"workload_discovery": map[string]any{}}}
	fields := map[string]any{"upstream_discovery": discovery, "upstream_propagation": method}
	if c == telemetry.Inbound {
		fields = map[string]any{"downstream_discovery": discovery, "downstream_propagation": method}
	}
	v, err := structpb.NewStruct(fields)
	if err != nil {
		panic(err) // the literal above is always valid
	}
	return &hcmv3.HttpFilter{Name: mxFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{
		TypedConfig: mustAny(&udpatype.TypedStruct{TypeUrl: peerMetadataURL, Value: v})}}
}

// withStatsFilters puts the metadata exchange filter first and the stats
// filter just before the router (the last filter).
func withStatsFilters(hfs []*hcmv3.HttpFilter, o observe) []*hcmv3.HttpFilter {
	stats := &hcmv3.HttpFilter{Name: statsFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(o.stats)}}
	out := make([]*hcmv3.HttpFilter, 0, len(hfs)+2)
	out = append(out, peerMetadataFilter(o.class))
	out = append(out, hfs[:len(hfs)-1]...)
	return append(out, stats, hfs[len(hfs)-1])
}

// withTCPStats puts the stats network filter (behind the TCP metadata
// exchange on a sidecar's inbound side) just before a chain's tcp_proxy.
func withTCPStats(fc *listenerv3.FilterChain, o observe) {
	last := len(fc.Filters) - 1
	out := make([]*listenerv3.Filter, 0, len(fc.Filters)+2)
	out = append(out, fc.Filters[:last]...)
	if o.class == telemetry.Inbound {
		offerPeerExchange(fc)
		out = append(out, &listenerv3.Filter{Name: mxFilterName, ConfigType: &listenerv3.Filter_TypedConfig{
			TypedConfig: mustAny(&mxpb.MetadataExchange{Protocol: peerExchangeALPN})}})
	}
	out = append(out, &listenerv3.Filter{Name: statsFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(o.stats)}})
	fc.Filters = append(out, fc.Filters[last])
}

// offerPeerExchange adds istio-peer-exchange to the ALPN protocols of a
// chain's mesh mTLS, first, as istiod does for inbound TCP chains: a mesh
// client offering it then exchanges metadata ahead of the stream.
func offerPeerExchange(fc *listenerv3.FilterChain) {
	ts := fc.GetTransportSocket()
	dc := &tlsv3.DownstreamTlsContext{}
	if ts == nil || ts.GetTypedConfig().UnmarshalTo(dc) != nil || dc.GetCommonTlsContext() == nil {
		return
	}
	if slices.Contains(dc.CommonTlsContext.AlpnProtocols, peerExchangeALPN) {
		return
	}
	dc.CommonTlsContext.AlpnProtocols = append([]string{peerExchangeALPN}, dc.CommonTlsContext.AlpnProtocols...)
	fc.TransportSocket = tlsSocket(dc)
}

// withServices names the services an inbound cluster serves in its istio
// filter metadata (services: [{host, name, namespace}]), as istiod does:
// the stats filter takes destination_service from there.
func withServices(c *clusterv3.Cluster, svcs []*model.Service) *clusterv3.Cluster {
	if len(svcs) == 0 {
		return c
	}
	list := make([]*structpb.Value, 0, len(svcs))
	for _, s := range svcs {
		list = append(list, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"host": structpb.NewStringValue(s.Hostname), "name": structpb.NewStringValue(s.Name), "namespace": structpb.NewStringValue(s.Namespace),
		}}))
	}
	if c.Metadata == nil {
		c.Metadata = &corev3.Metadata{}
	}
	if c.Metadata.FilterMetadata == nil {
		c.Metadata.FilterMetadata = map[string]*structpb.Struct{}
	}
	md := c.Metadata.FilterMetadata["istio"]
	if md == nil {
		md = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		c.Metadata.FilterMetadata["istio"] = md
	}
	md.Fields["services"] = structpb.NewListValue(&structpb.ListValue{Values: list})
	return c
}
