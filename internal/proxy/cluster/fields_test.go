package cluster

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A field the proxy does not act on is refused by name instead of ignored.
func TestUnhonouredClusterFieldsAreRefusedByName(t *testing.T) {
	for _, tc := range []struct {
		set  func(*clusterv3.Cluster)
		want string
	}{
		{func(pc *clusterv3.Cluster) { pc.LbSubsetConfig = &clusterv3.Cluster_LbSubsetConfig{} }, "field lb_subset_config is not supported"},
		{func(pc *clusterv3.Cluster) {
			pc.UpstreamBindConfig = &corev3.BindConfig{}
			pc.PerConnectionBufferLimitBytes = wrapperspb.UInt32(1024)
		}, "fields per_connection_buffer_limit_bytes, upstream_bind_config are not supported"},
		{func(pc *clusterv3.Cluster) {
			pc.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
			pc.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
		}, "dns_lookup_family V4_PREFERRED"},
	} {
		pc := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
		tc.set(pc)
		_, err := Compile(pc, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `cluster "c"`) {
			t.Errorf("got %v, want an error naming %q", err, tc.want)
		}
	}
}

// dns_lookup_family V4_ONLY keeps IPv6 answers out of a STRICT_DNS cluster
// (localhost comes from the hosts file, so no DNS server is asked).
func TestStrictDNSHonoursLookupFamily(t *testing.T) {
	for _, fam := range []clusterv3.Cluster_DnsLookupFamily{clusterv3.Cluster_V4_ONLY, clusterv3.Cluster_V6_ONLY} {
		pc := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}, DnsLookupFamily: fam,
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
					SocketAddress: &corev3.SocketAddress{Address: "localhost", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}}}}}}}}}}
		c, err := Compile(pc, Options{})
		if err != nil {
			t.Fatal(err)
		}
		c.resolve()
		for _, h := range c.Hosts() {
			v6 := strings.HasPrefix(h.Addr, "[")
			if fam == clusterv3.Cluster_V4_ONLY && v6 || fam == clusterv3.Cluster_V6_ONLY && !v6 {
				t.Errorf("%s: host %s", fam, h.Addr)
			}
			if h.Hostname != "localhost" {
				t.Errorf("host %s carries hostname %q, want localhost", h.Addr, h.Hostname)
			}
		}
		if fam == clusterv3.Cluster_V4_ONLY && len(c.Hosts()) == 0 {
			t.Error("V4_ONLY: localhost resolved to no IPv4 address")
		}
		c.Close()
	}
}

// Outlier detection without the success-rate detectors: asking for one is a NACK naming it.
func TestUnhonouredOutlierDetectorsAreRefusedByName(t *testing.T) {
	pc := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		OutlierDetection: &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3), SuccessRateMinimumHosts: wrapperspb.UInt32(2)}}
	if _, err := Compile(pc, Options{}); err == nil || !strings.Contains(err.Error(), `cluster "c".outlier_detection: field success_rate_minimum_hosts is not supported`) {
		t.Errorf("got %v", err)
	}
	pc.OutlierDetection.SuccessRateMinimumHosts = nil
	if _, err := Compile(pc, Options{}); err != nil {
		t.Errorf("consecutive_5xx alone: %v", err)
	}
}

// A circuit-breaker threshold the proxy does not enforce is a NACK naming it.
func TestUnhonouredCircuitBreakerFieldsAreRefusedByName(t *testing.T) {
	pc := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRequests: wrapperspb.UInt32(10), MaxConnectionPools: wrapperspb.UInt32(2)}}}}
	if _, err := Compile(pc, Options{}); err == nil || !strings.Contains(err.Error(), "circuit_breakers.thresholds[0]: field max_connection_pools is not supported") {
		t.Errorf("got %v", err)
	}
}
