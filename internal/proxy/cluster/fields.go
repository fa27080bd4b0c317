package cluster

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"mesh.dev/mesh/internal/proxy/protofields"
)

// checkClusterFields refuses a cluster that sets a field the proxy does not
// honour. Allowed are the fields it acts on plus the few that change nothing
// it does (names and metadata for stats and tools).
func checkClusterFields(pc *clusterv3.Cluster, f string) error {
	return protofields.Check(pc, f,
		"name", "alt_stat_name", "metadata", "track_cluster_stats",
		"type", "cluster_type", "eds_cluster_config", "load_assignment",
		"connect_timeout", "dns_refresh_rate", "dns_lookup_family",
		"lb_policy", "ring_hash_lb_config", "common_lb_config", "load_balancing_policy",
		"health_checks", "circuit_breakers", "outlier_detection",
		"transport_socket", "transport_socket_matches",
		"typed_extension_protocol_options", "http2_protocol_options")
}
