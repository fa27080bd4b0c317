// Package admin serves the Envoy-compatible admin API (/config_dump,
// /clusters, /listeners, /stats, /stats/prometheus, /server_info, /ready,
// /logging, /quitquitquit) so Envoy tooling and `mesh proxy-config` read it.
package admin

import (
	"fmt"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"mesh.dev/mesh/internal/proxy/config"
)

// mustAny packs a resource of the dump, its sensitive fields redacted.
func mustAny(m proto.Message) *anypb.Any {
	return pack(redactSensitive(m))
}

// pack packs what is already redacted: a section made of mustAny's.
func pack(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // only registered, well-formed messages reach here
	}
	return a
}

// ConfigDump builds admin.v3.ConfigDump from a snapshot in Envoy's order.
func ConfigDump(s *config.Snapshot, includeEDS bool) *adminv3.ConfigDump {
	d := &adminv3.ConfigDump{}
	if s.Bootstrap != nil {
		d.Configs = append(d.Configs, mustAny(&adminv3.BootstrapConfigDump{Bootstrap: s.Bootstrap, LastUpdated: timestamppb.New(s.BootstrapTime)}))
	}
	cd := &adminv3.ClustersConfigDump{VersionInfo: s.Version(config.ClusterType)}
	for _, r := range s.List(config.ClusterType) {
		if r.Static {
			cd.StaticClusters = append(cd.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: mustAny(r.Msg), LastUpdated: timestamppb.New(r.LastUpdated)})
		} else {
			cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: r.Version, Cluster: mustAny(r.Msg), LastUpdated: timestamppb.New(r.LastUpdated)})
		}
	}
	d.Configs = append(d.Configs, pack(cd))
	if includeEDS {
		ed := &adminv3.EndpointsConfigDump{}
		// Static clusters' inline assignments are shown as static endpoint configs, as Envoy does.
		for _, r := range s.List(config.ClusterType) {
			if la := r.Msg.(*clusterv3.Cluster).GetLoadAssignment(); r.Static && la != nil {
				ed.StaticEndpointConfigs = append(ed.StaticEndpointConfigs, &adminv3.EndpointsConfigDump_StaticEndpointConfig{EndpointConfig: mustAny(la), LastUpdated: timestamppb.New(r.LastUpdated)})
			}
		}
		for _, r := range s.List(config.EndpointType) {
			ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: r.Version, EndpointConfig: mustAny(r.Msg), LastUpdated: timestamppb.New(r.LastUpdated)})
		}
		d.Configs = append(d.Configs, pack(ed))
	}
	ld := &adminv3.ListenersConfigDump{VersionInfo: s.Version(config.ListenerType)}
	for _, r := range s.List(config.ListenerType) {
		if r.Static {
			ld.StaticListeners = append(ld.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: mustAny(r.Msg), LastUpdated: timestamppb.New(r.LastUpdated)})
		} else {
			ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{Name: r.Name, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{
				VersionInfo: r.Version, Listener: mustAny(r.Msg), LastUpdated: timestamppb.New(r.LastUpdated)}})
		}
	}
	d.Configs = append(d.Configs, pack(ld))
	rd := &adminv3.RoutesConfigDump{}
	// Route configurations inlined in listeners are shown as static, as Envoy does.
	for _, r := range s.List(config.ListenerType) {
		for _, rc := range inlineRoutes(r.Msg.(*listenerv3.Listener)) {
			rd.StaticRouteConfigs = append(rd.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{RouteConfig: mustAny(rc), LastUpdated: timestamppb.New(r.LastUpdated)})
		}
	}
	for _, r := range s.List(config.RouteType) {
		if r.Static {
			rd.StaticRouteConfigs = append(rd.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{RouteConfig: mustAny(r.Msg), LastUpdated: timestamppb.New(r.LastUpdated)})
			continue
		}
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: r.Version, RouteConfig: mustAny(r.Msg), LastUpdated: timestamppb.New(r.LastUpdated)})
	}
	d.Configs = append(d.Configs, pack(rd))
	sd := &adminv3.SecretsConfigDump{}
	for _, r := range s.List(config.SecretType) {
		sec := redact(r.Msg.(*tlsv3.Secret))
		if r.Static {
			sd.StaticSecrets = append(sd.StaticSecrets, &adminv3.SecretsConfigDump_StaticSecret{Name: r.Name, LastUpdated: timestamppb.New(r.LastUpdated), Secret: mustAny(sec)})
			continue
		}
		sd.DynamicActiveSecrets = append(sd.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{Name: r.Name, VersionInfo: r.Version, LastUpdated: timestamppb.New(r.LastUpdated), Secret: mustAny(sec)})
	}
	d.Configs = append(d.Configs, pack(sd))
	return d
}

func inlineRoutes(l *listenerv3.Listener) []*routev3.RouteConfiguration {
	var out []*routev3.RouteConfiguration
	chains := append([]*listenerv3.FilterChain{}, l.GetFilterChains()...)
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains, l.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			h := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig().UnmarshalTo(h) == nil && h.GetRouteConfig() != nil {
				out = append(out, h.GetRouteConfig())
			}
		}
	}
	return out
}

// redact hides private keys, as Envoy's dump does.
func redact(s *tlsv3.Secret) *tlsv3.Secret {
	if s.GetTlsCertificate().GetPrivateKey() == nil {
		return s
	}
	c := proto.Clone(s).(*tlsv3.Secret)
	c.GetTlsCertificate().PrivateKey = redactedSource()
	return c
}

// Filter applies ?resource= and ?mask= to a dump, as Envoy's /config_dump does.
func Filter(d *adminv3.ConfigDump, resource, mask string) (*adminv3.ConfigDump, error) {
	var paths [][]string
	if mask != "" {
		for _, p := range strings.Split(mask, ",") {
			paths = append(paths, strings.Split(strings.TrimSpace(p), "."))
		}
	}
	if resource == "" {
		if paths == nil {
			return d, nil
		}
		out := &adminv3.ConfigDump{}
		for _, a := range d.Configs {
			m, err := a.UnmarshalNew()
			if err != nil {
				return nil, err
			}
			prune(m.ProtoReflect(), paths)
			out.Configs = append(out.Configs, pack(m))
		}
		return out, nil
	}
	out := &adminv3.ConfigDump{}
	found := false
	for _, a := range d.Configs {
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, err
		}
		fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(resource))
		if fd == nil || !fd.IsList() || fd.Kind() != protoreflect.MessageKind {
			continue
		}
		found = true
		l := m.ProtoReflect().Get(fd).List()
		for i := 0; i < l.Len(); i++ {
			item := l.Get(i).Message().Interface()
			if paths != nil {
				prune(item.ProtoReflect(), paths)
			}
			out.Configs = append(out.Configs, pack(item))
		}
	}
	if !found {
		return nil, fmt.Errorf("resource %q is not a repeated field of any config dump", resource)
	}
	return out, nil
}

// prune keeps only the fields named by paths.
func prune(m protoreflect.Message, paths [][]string) {
	keep := map[protoreflect.Name][][]string{}
	for _, p := range paths {
		if len(p) == 0 {
			continue
		}
		keep[protoreflect.Name(p[0])] = append(keep[protoreflect.Name(p[0])], p[1:])
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		sub, ok := keep[fd.Name()]
		if !ok {
			m.Clear(fd)
			return true
		}
		var deeper [][]string
		for _, s := range sub {
			if len(s) == 0 {
				return true // the whole field is kept
			}
			deeper = append(deeper, s)
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsMap() {
			if fd.IsList() {
				for i := 0; i < v.List().Len(); i++ {
					pruneMsg(v.List().Get(i).Message(), deeper)
				}
			} else {
				pruneMsg(v.Message(), deeper)
			}
		}
		return true
	})
}

// pruneMsg prunes a message, looking inside Any payloads as Envoy's mask does.
func pruneMsg(m protoreflect.Message, paths [][]string) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		prune(m, paths)
		return
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return
	}
	prune(inner.ProtoReflect(), paths)
	if packed, err := anypb.New(inner); err == nil {
		a.Value = packed.Value
	}
}
