package cluster

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func staticCluster(t *testing.T, mod func(*clusterv3.Cluster)) *Cluster {
	t.Helper()
	pc := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	mod(pc)
	c, err := Compile(pc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetryBudgetScalesWithActiveRequests(t *testing.T) {
	c := staticCluster(t, func(pc *clusterv3.Cluster) {
		pc.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRetries:  wrapperspb.UInt32(1), // ignored once a budget is set, as in Envoy
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 50}, MinRetryConcurrency: wrapperspb.UInt32(2)},
		}}}
	})
	// Nothing in flight: the floor of 2 concurrent retries applies.
	if !c.AcquireRetry() || !c.AcquireRetry() || c.AcquireRetry() {
		t.Fatal("with no active requests exactly min_retry_concurrency=2 retries should be allowed")
	}
	c.ReleaseRetry()
	c.ReleaseRetry()
	// Ten requests in flight: 50% of 10 = 5 retries.
	for i := 0; i < 10; i++ {
		if !c.Acquire() {
			t.Fatal("request slot refused")
		}
	}
	got := 0
	for c.AcquireRetry() {
		got++
	}
	if got != 5 {
		t.Fatalf("budget allowed %d concurrent retries with 10 active requests at 50%%; want 5", got)
	}
	if c.Stats.RqRetryOverflow.Load() == 0 {
		t.Fatal("retry overflow not counted")
	}
}

func TestUnsupportedFieldsAreNamed(t *testing.T) {
	cases := map[string]func(*clusterv3.Cluster){
		"lb_policy MAGLEV": func(pc *clusterv3.Cluster) { pc.LbPolicy = clusterv3.Cluster_MAGLEV },
		"type LOGICAL_DNS": func(pc *clusterv3.Cluster) {
			pc.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		},
		"transport_socket_matches[0].transport_socket": func(pc *clusterv3.Cluster) {
			pc.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{{Name: "x", TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.alts"}}}
		},
		"zone_aware_lb_config": func(pc *clusterv3.Cluster) {
			pc.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig_{ZoneAwareLbConfig: &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig{}}}
		},
	}
	for want, mod := range cases {
		pc := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
		mod(pc)
		_, err := Compile(pc, Options{})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `cluster "c"`) {
			t.Errorf("%s: error %v should name the cluster and the field", want, err)
		}
	}
}
