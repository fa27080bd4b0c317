// Package dumpgen writes synthetic Envoy config dumps shaped like an Istio
// sidecar's (clusters per service and subset, EDS endpoints, per-port
// listeners and routes) for benchmarks and tests.
package dumpgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// Spec sizes a synthetic dump.
type Spec struct {
	Services            int // services, each with a default cluster and Subsets subset clusters
	Subsets             int
	EndpointsPerCluster int
	Ports               int // distinct service ports, each with a listener and a route configuration
	Namespaces          int
}

// Clusters is how many dynamic clusters the spec yields.
func (s Spec) Clusters() int { return s.Services * (1 + s.Subsets) }

type service struct {
	name, ns, fqdn string
	port           int
}

func (s Spec) services() []service {
	out := make([]service, s.Services)
	for i := range out {
		ns := fmt.Sprintf("ns-%d", i%max(s.Namespaces, 1))
		name := fmt.Sprintf("svc-%d", i)
		out[i] = service{name: name, ns: ns, fqdn: name + "." + ns + ".svc.cluster.local", port: 8000 + i%max(s.Ports, 1)}
	}
	return out
}

type obj = map[string]any

// Write writes the dump as Envoy prints /config_dump?include_eds.
func Write(w io.Writer, s Spec) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	g := &gen{w: bw}
	svcs := s.services()
	g.raw("{\n \"configs\": [\n")
	g.raw(`  {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": `)
	g.json(bootstrap())
	g.raw(", \"last_updated\": \"2026-01-01T00:00:00.000Z\"},\n")

	g.raw(`  {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "version_info": "2026-01-01T00:00:00Z/7", "dynamic_active_clusters": [` + "\n")
	first := true
	for _, sv := range svcs {
		for sub := 0; sub <= s.Subsets; sub++ {
			subset := ""
			if sub > 0 {
				subset = fmt.Sprintf("v%d", sub)
			}
			g.sep(&first)
			g.raw(`   {"version_info": "2026-01-01T00:00:00Z/7", "cluster": `)
			g.json(cluster(sv, subset))
			g.raw(`, "last_updated": "2026-01-01T00:00:01.000Z"}`)
		}
	}
	g.raw("\n  ]},\n")

	g.raw(`  {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs": [` + "\n")
	first = true
	n := 0
	for _, sv := range svcs {
		for sub := 0; sub <= s.Subsets; sub++ {
			subset := ""
			if sub > 0 {
				subset = fmt.Sprintf("v%d", sub)
			}
			g.sep(&first)
			g.raw(`   {"version_info": "2026-01-01T00:00:00Z/7", "endpoint_config": `)
			g.json(endpoints(sv, subset, s.EndpointsPerCluster, n))
			g.raw(`, "last_updated": "2026-01-01T00:00:01.000Z"}`)
			n++
		}
	}
	g.raw("\n  ]},\n")

	g.raw(`  {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "version_info": "2026-01-01T00:00:00Z/7", "dynamic_listeners": [` + "\n")
	first = true
	for p := 0; p < max(s.Ports, 1); p++ {
		g.sep(&first)
		port := 8000 + p
		g.raw(fmt.Sprintf(`   {"name": "0.0.0.0_%d", "active_state": {"version_info": "2026-01-01T00:00:00Z/7", "listener": `, port))
		g.json(listener(port))
		g.raw(`, "last_updated": "2026-01-01T00:00:01.000Z"}}`)
	}
	g.raw("\n  ]},\n")

	g.raw(`  {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [` + "\n")
	first = true
	for p := 0; p < max(s.Ports, 1); p++ {
		g.sep(&first)
		g.raw(`   {"version_info": "2026-01-01T00:00:00Z/7", "route_config": `)
		g.json(routeConfig(8000+p, svcs))
		g.raw(`, "last_updated": "2026-01-01T00:00:01.000Z"}`)
	}
	g.raw("\n  ]}\n ]\n}\n")
	if g.err != nil {
		return g.err
	}
	return bw.Flush()
}

type gen struct {
	w   *bufio.Writer
	err error
}

func (g *gen) raw(s string) {
	if g.err == nil {
		_, g.err = g.w.WriteString(s)
	}
}

func (g *gen) json(v any) {
	if g.err != nil {
		return
	}
	b, err := json.MarshalIndent(v, "   ", " ")
	if err != nil {
		g.err = err
		return
	}
	_, g.err = g.w.Write(b)
}

func (g *gen) sep(first *bool) {
	if !*first {
		g.raw(",\n")
	}
	*first = false
}

func clusterName(sv service, subset string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", sv.port, subset, sv.fqdn)
}

func bootstrap() obj {
	return obj{
		"node": obj{
			"id":       "sidecar~198.18.0.2~bench-0.default~default.svc.cluster.local",
			"cluster":  "bench.default",
			"metadata": obj{"ISTIO_VERSION": "1.32.0", "CLUSTER_ID": "Kubernetes", "NAMESPACE": "default"},
		},
		"admin": obj{"address": obj{"socket_address": obj{"address": "127.0.0.1", "port_value": 15000}}},
		"dynamic_resources": obj{
			"ads_config": obj{"api_type": "GRPC", "transport_api_version": "V3",
				"grpc_services": []any{obj{"envoy_grpc": obj{"cluster_name": "xds-grpc"}}}},
			"cds_config": obj{"ads": obj{}, "resource_api_version": "V3"},
			"lds_config": obj{"ads": obj{}, "resource_api_version": "V3"},
		},
		"static_resources": obj{"clusters": []any{obj{
			"name": "xds-grpc", "type": "STATIC", "connect_timeout": "1s",
			"load_assignment": obj{"cluster_name": "xds-grpc", "endpoints": []any{obj{"lb_endpoints": []any{
				obj{"endpoint": obj{"address": obj{"socket_address": obj{"address": "127.0.0.1", "port_value": 15010}}}}}}}},
		}}},
	}
}

func cluster(sv service, subset string) obj {
	name := clusterName(sv, subset)
	istio := obj{"services": []any{obj{"host": sv.fqdn, "name": sv.name, "namespace": sv.ns}}}
	if subset != "" {
		istio["config"] = fmt.Sprintf("/apis/networking.istio.io/v1alpha3/namespaces/%s/destination-rule/%s", sv.ns, sv.name)
	}
	sds := func(name string) obj {
		return obj{"name": name, "sds_config": obj{"api_config_source": obj{"api_type": "GRPC", "transport_api_version": "V3",
			"grpc_services": []any{obj{"envoy_grpc": obj{"cluster_name": "sds-grpc"}}}, "set_node_on_first_message_only": true}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}}
	}
	return obj{
		"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
		"name":  name,
		"type":  "EDS",
		"eds_cluster_config": obj{
			"eds_config":   obj{"ads": obj{}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
			"service_name": name,
		},
		"connect_timeout": "10s",
		"lb_policy":       "LEAST_REQUEST",
		"circuit_breakers": obj{"thresholds": []any{obj{
			"max_connections": 4294967295, "max_pending_requests": 4294967295, "max_requests": 4294967295, "max_retries": 4294967295, "track_remaining": true,
		}}},
		"outlier_detection": obj{"consecutive_5xx": 7, "interval": "10s", "base_ejection_time": "30s", "max_ejection_percent": 100, "enforcing_consecutive_5xx": 100},
		"common_lb_config":  obj{"locality_weighted_lb_config": obj{}},
		"metadata":          obj{"filter_metadata": obj{"istio": istio}},
		"typed_extension_protocol_options": obj{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": obj{
			"@type":                          "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
			"common_http_protocol_options":   obj{"idle_timeout": "3600s", "max_connection_duration": "0s"},
			"use_downstream_protocol_config": obj{"http_protocol_options": obj{}, "http2_protocol_options": obj{"max_concurrent_streams": 1073741824}},
		}},
		// Istio's peer metadata filter is not a go-control-plane type: parsers
		// must keep it raw rather than fail.
		"filters": []any{obj{"name": "istio.metadata_exchange", "typed_config": obj{
			"@type": "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange", "protocol": "istio-peer-exchange", "enable_discovery": true,
		}}},
		"transport_socket_matches": []any{
			obj{"name": "tlsMode-istio", "match": obj{"tlsMode": "istio"}, "transport_socket": obj{"name": "envoy.transport_sockets.tls", "typed_config": obj{
				"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
				"common_tls_context": obj{
					"tls_params":                         obj{"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
					"alpn_protocols":                     []any{"istio-peer-exchange", "istio"},
					"tls_certificate_sds_secret_configs": []any{sds("default")},
					"combined_validation_context": obj{
						"default_validation_context":           obj{"match_subject_alt_names": []any{obj{"exact": "spiffe://cluster.local/ns/" + sv.ns + "/sa/" + sv.name}}},
						"validation_context_sds_secret_config": sds("ROOTCA"),
					},
				},
				"sni": fmt.Sprintf("outbound_.%d_.%s_.%s", sv.port, subset, sv.fqdn),
			}}},
			obj{"name": "tlsMode-disabled", "match": obj{}, "transport_socket": obj{"name": "envoy.transport_sockets.raw_buffer", "typed_config": obj{
				"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}},
		},
	}
}

func endpoints(sv service, subset string, n, seed int) obj {
	var lbs []any
	for i := 0; i < n; i++ {
		k := seed*n + i
		ip := fmt.Sprintf("198.18.%d.%d", (k/250)%256, k%250+1)
		lbs = append(lbs, obj{
			"endpoint":      obj{"address": obj{"socket_address": obj{"address": ip, "port_value": sv.port}}, "health_check_config": obj{}},
			"health_status": "HEALTHY",
			"metadata": obj{"filter_metadata": obj{
				"envoy.transport_socket_match": obj{"tlsMode": "istio"},
				"istio":                        obj{"workload": fmt.Sprintf("%s-%d;%s;%s;%s;cluster", sv.name, i, sv.ns, sv.name, subset)},
			}},
			"load_balancing_weight": 1,
		})
	}
	return obj{
		"@type":        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
		"cluster_name": clusterName(sv, subset),
		"endpoints":    []any{obj{"locality": obj{"region": "bench", "zone": "bench-a"}, "lb_endpoints": lbs, "load_balancing_weight": n}},
		"policy":       obj{"overprovisioning_factor": 140},
	}
}

func listener(port int) obj {
	return obj{
		"@type":   "type.googleapis.com/envoy.config.listener.v3.Listener",
		"name":    fmt.Sprintf("0.0.0.0_%d", port),
		"address": obj{"socket_address": obj{"address": "0.0.0.0", "port_value": port}},
		"filter_chains": []any{obj{
			"filter_chain_match": obj{"transport_protocol": "raw_buffer", "application_protocols": []any{"http/1.1", "h2c"}},
			"filters": []any{obj{"name": "envoy.filters.network.http_connection_manager", "typed_config": obj{
				"@type":        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
				"stat_prefix":  fmt.Sprintf("outbound_0.0.0.0_%d", port),
				"rds":          obj{"config_source": obj{"ads": obj{}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}, "route_config_name": fmt.Sprint(port)},
				"http_filters": []any{obj{"name": "envoy.filters.http.router", "typed_config": obj{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}},
			}}},
		}},
		"listener_filters": []any{obj{"name": "envoy.filters.listener.http_inspector", "typed_config": obj{
			"@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}}},
		"traffic_direction": "OUTBOUND",
		"bind_to_port":      false,
	}
}

func routeConfig(port int, svcs []service) obj {
	var vhosts []any
	for _, sv := range svcs {
		if sv.port != port {
			continue
		}
		vhosts = append(vhosts, obj{
			"name":    fmt.Sprintf("%s:%d", sv.fqdn, port),
			"domains": []any{fmt.Sprintf("%s:%d", sv.fqdn, port), sv.fqdn, sv.name + "." + sv.ns},
			"routes": []any{obj{
				"name":  "default",
				"match": obj{"prefix": "/"},
				"route": obj{"cluster": clusterName(sv, ""), "timeout": "0s",
					"retry_policy": obj{"retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", "num_retries": 2}},
				"metadata": obj{"filter_metadata": obj{"istio": obj{
					"config": fmt.Sprintf("/apis/networking.istio.io/v1alpha3/namespaces/%s/virtual-service/%s", sv.ns, sv.name)}}},
				"decorator": obj{"operation": fmt.Sprintf("%s:%d/*", sv.fqdn, port)},
			}},
		})
	}
	return obj{
		"@type":             "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
		"name":              fmt.Sprint(port),
		"virtual_hosts":     vhosts,
		"validate_clusters": false,
	}
}
