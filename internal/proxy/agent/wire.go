// Package agent assembles the proxy: configuration store, clusters,
// listeners, the ADS client, the admin API, readiness, Istio-style metrics,
// and graceful drain.
package agent

import (
	"fmt"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/config"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/listener"
	"mesh.dev/mesh/internal/proxy/router"
)

// newStore builds a Store whose compilers and commit hooks keep clusters and listeners live.
func newStore(lm **listener.Manager, filters *httpfilter.Registry) *config.Store {
	s := config.NewStore()
	s.SetCompiler(config.ClusterType, func(msg proto.Message, prev *config.Resource, _ *config.Snapshot) (any, error) {
		pc := msg.(*clusterv3.Cluster)
		if prev != nil {
			if c := prev.Compiled.(*cluster.Cluster); c.SameConfig(pc) {
				return c, nil
			}
		}
		return cluster.Compile(pc, cluster.Options{Secrets: s})
	})
	s.SetCompiler(config.RouteType, func(msg proto.Message, _ *config.Resource, _ *config.Snapshot) (any, error) {
		return router.CompileWith(msg.(*routev3.RouteConfiguration), filters.RouteOptions())
	})
	s.SetCompiler(config.EndpointType, func(msg proto.Message, _ *config.Resource, _ *config.Snapshot) (any, error) {
		cla := msg.(*endpointv3.ClusterLoadAssignment)
		if err := cla.ValidateAll(); err != nil {
			return nil, fmt.Errorf("cluster_load_assignment %q: %w", cla.GetClusterName(), err)
		}
		// A dry run on a scratch cluster catches what SetEndpoints would refuse.
		probe, _ := cluster.Compile(&clusterv3.Cluster{Name: "probe", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}, cluster.Options{})
		if err := probe.SetEndpoints(cla); err != nil {
			return nil, fmt.Errorf("cluster_load_assignment %q: %w", cla.GetClusterName(), err)
		}
		return cla, nil
	})
	s.SetCompiler(config.SecretType, func(msg proto.Message, _ *config.Resource, _ *config.Snapshot) (any, error) {
		sec := msg.(*tlsv3.Secret)
		if err := sec.ValidateAll(); err != nil {
			return nil, fmt.Errorf("secret %q: %w", sec.GetName(), err)
		}
		switch sec.GetType().(type) {
		case *tlsv3.Secret_TlsCertificate, *tlsv3.Secret_ValidationContext:
		default:
			return nil, fmt.Errorf("secret %q: only tls_certificate and validation_context secrets are supported", sec.GetName())
		}
		return sec, nil
	})
	s.OnCommit(func(old, next *config.Snapshot) {
		// Clusters: start new ones, give them endpoints, stop replaced or removed ones.
		for _, r := range next.List(config.ClusterType) {
			c := r.Compiled.(*cluster.Cluster)
			if prev := old.Cluster(r.Name); prev != c {
				if c.EDSServiceName != "" {
					if e := next.Get(config.EndpointType, c.EDSServiceName); e != nil {
						c.SetEndpoints(e.Msg.(*endpointv3.ClusterLoadAssignment))
					}
				}
				c.Start()
				if prev != nil {
					prev.Close()
				}
			}
		}
		for _, r := range old.List(config.ClusterType) {
			if next.Get(config.ClusterType, r.Name) == nil {
				r.Compiled.(*cluster.Cluster).Close()
			}
		}
		// Endpoints: push changed assignments into their clusters.
		for _, r := range next.List(config.EndpointType) {
			if o := old.Get(config.EndpointType, r.Name); o == r {
				continue
			}
			for _, cr := range next.List(config.ClusterType) {
				if c := cr.Compiled.(*cluster.Cluster); c.EDSServiceName == r.Name {
					c.SetEndpoints(r.Msg.(*endpointv3.ClusterLoadAssignment))
				}
			}
		}
		if *lm != nil {
			if err := (*lm).Reconcile(next); err != nil {
				configLog.Error("listener reconcile", "err", err)
			}
		}
	})
	return s
}

// Names implements xdsclient.Handler's subscription list for named types.
func names(s *config.Snapshot, typeURL string) []string {
	set := map[string]bool{}
	switch typeURL {
	case config.EndpointType:
		for _, r := range s.List(config.ClusterType) {
			if n := r.Compiled.(*cluster.Cluster).EDSServiceName; n != "" {
				set[n] = true
			}
		}
	case config.RouteType:
		for _, r := range s.List(config.ListenerType) {
			for _, n := range r.Compiled.(*listener.Listener).RouteNames() {
				set[n] = true
			}
		}
	case config.SecretType:
		collectSDS(s, set)
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// collectSDS finds secret names referenced by clusters and listeners by walking their protos.
func collectSDS(s *config.Snapshot, set map[string]bool) {
	var walk func(m proto.Message)
	walk = func(m proto.Message) {
		switch x := m.(type) {
		case *tlsv3.SdsSecretConfig:
			if x.GetName() != "" {
				set[x.GetName()] = true
			}
			return
		}
		protoWalk(m, walk)
	}
	for _, t := range []string{config.ClusterType, config.ListenerType} {
		for _, r := range s.List(t) {
			walk(r.Msg)
		}
	}
}
