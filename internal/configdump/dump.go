// Package configdump parses Envoy's admin.v3.ConfigDump JSON (what a proxy's
// /config_dump answers) into typed go-control-plane messages, keeping every
// resource's original JSON beside its typed form.
//
// Resources whose type, or some nested Any's type, is not linked into this
// program still parse: the unknown parts are kept as raw JSON and listed in
// Resource.UnknownTypes rather than failing the whole dump.
package configdump

import (
	"google.golang.org/protobuf/proto"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
)

// Kind is the class of an xDS resource in a dump.
type Kind string

// The resource kinds a config dump holds.
const (
	KindBootstrap       Kind = "bootstrap"
	KindCluster         Kind = "cluster"
	KindListener        Kind = "listener"
	KindRoute           Kind = "route"
	KindScopedRoute     Kind = "scoped_route"
	KindEndpoint        Kind = "endpoint"
	KindSecret          Kind = "secret"
	KindExtensionConfig Kind = "extension_config"
	// KindUnknown is a top-level config section of a type this program does not know.
	KindUnknown Kind = "unknown"
)

// AllKinds lists every kind in the order Envoy dumps them.
var AllKinds = []Kind{KindBootstrap, KindCluster, KindExtensionConfig, KindListener, KindScopedRoute, KindRoute, KindEndpoint, KindSecret, KindUnknown}

// State says where in its lifecycle a resource was when the proxy dumped it.
type State string

// Resource states as Envoy reports them.
const (
	StateStatic   State = "static"
	StateActive   State = "dynamic_active"
	StateWarming  State = "dynamic_warming"
	StateDraining State = "dynamic_draining"
)

// Resource is one xDS resource found in a dump.
type Resource struct {
	Kind        Kind
	Name        string
	State       State
	VersionInfo string
	LastUpdated string
	// TypeURL is the resource's Any type URL (for bootstrap, the Bootstrap message's).
	TypeURL string
	// Raw is the resource's JSON exactly as it appeared in the dump.
	Raw []byte
	// Message is the typed resource; nil when the kind was not asked for or
	// the resource's own type is unknown to this program.
	Message proto.Message
	// UnknownTypes lists Any type URLs inside the resource that this program
	// cannot decode; those parts are kept only in Raw.
	UnknownTypes []string
	// Partial is set when Message holds only the fields Options.Fields asked for.
	Partial bool
	// Path says where the resource sits in the dump, e.g.
	// configs[1].dynamic_active_clusters[3].cluster.
	Path string
	// Offset is the byte offset of Raw in the dump.
	Offset int
}

// Dump is a parsed config dump.
type Dump struct {
	// Resources in the order they appear in the dump.
	Resources []*Resource
	// HostStatuses is set when the input was /clusters?format=json rather than /config_dump.
	HostStatuses *adminv3.Clusters
}

// Of returns the resources of one kind, in dump order.
func (d *Dump) Of(kind Kind) []*Resource {
	var out []*Resource
	for _, r := range d.Resources {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// Options narrows what Parse decodes.
type Options struct {
	// Kinds lists the kinds to collect and decode; empty means all. The other
	// sections are only checked for balanced structure.
	Kinds []Kind
	// Fields, when set for a kind, limits decoding of its resources to these
	// top-level fields (proto names); the rest stay in Raw. A summary that
	// needs three fields of a 10 KB cluster then skips protojson for the rest.
	// Such resources have Partial set.
	Fields map[Kind][]string
}

func (o Options) wants(k Kind) bool {
	if len(o.Kinds) == 0 {
		return true
	}
	for _, w := range o.Kinds {
		if w == k {
			return true
		}
	}
	return false
}
