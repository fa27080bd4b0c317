package cluster

import (
	"fmt"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// clusterFields are the Cluster fields the proxy acts on, plus the few that
// change nothing it does (names and metadata for stats and tools). Any other
// field set is refused by name: a cluster is never half-applied in silence.
var clusterFields = map[protoreflect.Name]bool{
	"name": true, "alt_stat_name": true, "metadata": true, "track_cluster_stats": true,
	"type": true, "cluster_type": true, "eds_cluster_config": true, "load_assignment": true,
	"connect_timeout": true, "dns_refresh_rate": true, "dns_lookup_family": true,
	"lb_policy": true, "ring_hash_lb_config": true, "common_lb_config": true, "load_balancing_policy": true,
	"health_checks": true, "circuit_breakers": true, "outlier_detection": true,
	"transport_socket": true, "transport_socket_matches": true,
	"typed_extension_protocol_options": true, "http2_protocol_options": true,
}

// checkClusterFields refuses a cluster that sets a field the proxy does not honour.
func checkClusterFields(pc *clusterv3.Cluster, f string) error {
	var unknown []string
	pc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !clusterFields[fd.Name()] {
			unknown = append(unknown, string(fd.Name()))
		}
		return true
	})
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("%s: %s not supported by mesh-proxy (remove it, or it would be ignored)", f, plural(unknown))
}

func plural(names []string) string {
	if len(names) == 1 {
		return "field " + names[0] + " is"
	}
	return "fields " + strings.Join(names, ", ") + " are"
}
