// Package config holds the proxy's configuration as one immutable snapshot of
// Envoy resources (listeners, routes, clusters, endpoints, secrets), each with
// its compiled form, replaced atomically as a whole on every accepted update.
package config

import (
	"sort"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/router"
)

// Type URLs of the resources the proxy subscribes to. They are spelled out
// rather than taken from go-control-plane's resource package, which would link
// every xDS type into the binary and cost resident memory.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	SecretType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// Resource is one accepted resource.
type Resource struct {
	Name        string
	Version     string
	LastUpdated time.Time
	Msg         proto.Message
	Compiled    any  // the package-specific compiled form
	Static      bool // from the bootstrap, not xDS
}

// Snapshot is an immutable view of all configuration.
type Snapshot struct {
	Bootstrap     *bootstrapv3.Bootstrap
	BootstrapTime time.Time
	res           map[string]map[string]*Resource
	versions      map[string]string
}

func newSnapshot() *Snapshot {
	return &Snapshot{res: map[string]map[string]*Resource{}, versions: map[string]string{}}
}

// clone copies the top-level maps so one type can be replaced without touching the original.
func (s *Snapshot) clone() *Snapshot {
	n := &Snapshot{Bootstrap: s.Bootstrap, BootstrapTime: s.BootstrapTime, res: make(map[string]map[string]*Resource, len(s.res)), versions: make(map[string]string, len(s.versions))}
	for k, v := range s.res {
		n.res[k] = v
	}
	for k, v := range s.versions {
		n.versions[k] = v
	}
	return n
}

// Get returns a resource by type and name, nil when absent.
func (s *Snapshot) Get(typeURL, name string) *Resource { return s.res[typeURL][name] }

// List returns a type's resources sorted by name.
func (s *Snapshot) List(typeURL string) []*Resource {
	m := s.res[typeURL]
	out := make([]*Resource, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Version is the last accepted version_info for a type.
func (s *Snapshot) Version(typeURL string) string { return s.versions[typeURL] }

// Cluster returns a compiled cluster, nil when unknown.
func (s *Snapshot) Cluster(name string) *cluster.Cluster {
	if r := s.res[ClusterType][name]; r != nil {
		return r.Compiled.(*cluster.Cluster)
	}
	return nil
}

// Route returns a compiled route table, nil when unknown.
func (s *Snapshot) Route(name string) *router.Table {
	if r := s.res[RouteType][name]; r != nil {
		return r.Compiled.(*router.Table)
	}
	return nil
}

// Secret returns an SDS secret, nil when unknown.
func (s *Snapshot) Secret(name string) *tlsv3.Secret {
	if r := s.res[SecretType][name]; r != nil {
		return r.Msg.(*tlsv3.Secret)
	}
	return nil
}
