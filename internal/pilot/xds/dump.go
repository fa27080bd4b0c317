package xds

import (
	"bytes"
	"encoding/json"
	"fmt"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	// The dump's Any fields must resolve every type pilot may emit.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
)

// Validate reports go-control-plane's ValidateAll verdict on every resource
// (computed when the resource was generated), naming those that fail.
func (r *Resources) Validate() error { return r.invalid }

// ConfigDump renders the resources as Envoy's admin ConfigDump, as a proxy
// that accepted them all would report it. Private keys are
// redacted as Envoy does.
func (r *Resources) ConfigDump() (*adminv3.ConfigDump, error) {
	cd := &adminv3.ClustersConfigDump{VersionInfo: r.Version(resourcev3.ClusterType)}
	for _, it := range r.items(resourcev3.ClusterType) {
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
			VersionInfo: r.Version(resourcev3.ClusterType), Cluster: mustAny(it.msg.(*clusterv3.Cluster)),
		})
	}
	ld := &adminv3.ListenersConfigDump{VersionInfo: r.Version(resourcev3.ListenerType)}
	for _, it := range r.items(resourcev3.ListenerType) {
		ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: it.name,
			ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{
				VersionInfo: r.Version(resourcev3.ListenerType), Listener: mustAny(it.msg.(*listenerv3.Listener)),
			},
		})
	}
	rd := &adminv3.RoutesConfigDump{}
	for _, it := range r.items(resourcev3.RouteType) {
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: r.Version(resourcev3.RouteType), RouteConfig: mustAny(it.msg.(*routev3.RouteConfiguration)),
		})
	}
	sd := &adminv3.SecretsConfigDump{}
	for _, it := range r.items(resourcev3.SecretType) {
		s := proto.Clone(it.msg).(*tlsv3.Secret)
		if c := s.GetTlsCertificate(); c != nil && c.PrivateKey != nil {
			c.PrivateKey = redacted()
		}
		sd.DynamicActiveSecrets = append(sd.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: it.name, VersionInfo: r.Version(resourcev3.SecretType), Secret: mustAny(s),
		})
	}
	ed := &adminv3.EndpointsConfigDump{}
	for _, it := range r.items(resourcev3.EndpointType) {
		ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
			VersionInfo: r.Version(resourcev3.EndpointType), EndpointConfig: mustAny(it.msg.(*endpointv3.ClusterLoadAssignment)),
		})
	}
	out := &adminv3.ConfigDump{}
	for _, m := range []proto.Message{cd, ld, rd, sd, ed} {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("pack %T: %w", m, err)
		}
		out.Configs = append(out.Configs, a)
	}
	return out, nil
}

func redacted() *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}
}

// MarshalConfigDump renders a ConfigDump as stable, indented JSON (protojson
// alone varies its whitespace from run to run).
func MarshalConfigDump(cd *adminv3.ConfigDump) ([]byte, error) {
	raw, err := protojson.Marshal(cd)
	if err != nil {
		return nil, fmt.Errorf("marshal config dump: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return nil, fmt.Errorf("indent config dump: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
