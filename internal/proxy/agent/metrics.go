package agent

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"

	"mesh.dev/mesh/internal/proxy/istiostats"
	"mesh.dev/mesh/internal/proxy/peermeta"
)

// Metrics is the proxy's Prometheus registry, with Istio's standard metrics
// (recorded by the istio.stats filters pilot puts on listeners) in it.
type Metrics struct {
	Registry *prometheus.Registry
	Istio    *istiostats.Recorder
}

// Workload identifies this proxy's workload when no node metadata does
// (mesh-proxy's flags and the injector's SERVICE_NAME/SERVICE_VERSION).
type Workload struct {
	Name, Namespace, App, Version, Cluster string
}

// NewMetrics registers Istio's metrics of a proxy whose workload is self in a fresh registry.
func NewMetrics(self *peermeta.Node) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), Istio: istiostats.NewRecorder(self)}
	m.Registry.MustRegister(m.Istio)
	return m
}

// selfNode is the metadata this proxy tells its peers: the node's metadata
// in Istio's keys (from the bootstrap, or ISTIO_META_* as the injector
// sets them), filled in from the node id and the Workload where they say
// nothing.
func selfNode(opts Options, node *corev3.Node) *peermeta.Node {
	n := peermeta.FromStruct(node.GetMetadata())
	if opts.Peer != nil {
		n = opts.Peer
	}
	n.ID = node.GetId()
	w := opts.Workload
	if n.Name == "" || n.Namespace == "" {
		if _, _, podNS, _, err := ParseNodeID(node.GetId()); err == nil {
			pod, ns, _ := strings.Cut(podNS, ".")
			if n.Name == "" {
				n.Name = pod
			}
			if n.Namespace == "" {
				n.Namespace = ns
			}
			if n.WorkloadName == "" && w.Name == "" {
				n.WorkloadName = workloadName(pod)
			}
		}
	}
	if n.WorkloadName == "" {
		n.WorkloadName = w.Name
	}
	if n.Namespace == "" {
		n.Namespace = w.Namespace
	}
	if n.ClusterID == "" {
		n.ClusterID = w.Cluster
	}
	if n.Labels == nil && (w.App != "" || w.Version != "") {
		n.Labels = map[string]string{}
	}
	if w.App != "" && n.Labels["app"] == "" {
		n.Labels["app"] = w.App
	}
	if w.Version != "" && n.Labels["version"] == "" {
		n.Labels["version"] = w.Version
	}
	return n
}
