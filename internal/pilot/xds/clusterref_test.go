package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/model"
)

// `mesh proxy-config cluster` shows which DestinationRule shaped a cluster
// from the cluster's istio filter metadata; without it the column is empty.
func TestClustersNameTheirDestinationRule(t *testing.T) {
	configRef := func(c *clusterv3.Cluster) string {
		return c.GetMetadata().GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
	}
	w, pc := bookinfo(t, "destination-rule-all.yaml")
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	want := "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"
	for _, name := range []string{"outbound|9080||reviews.default.svc.cluster.local", "outbound|9080|v2|reviews.default.svc.cluster.local"} {
		if got := configRef(find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, name)); got != want {
			t.Errorf("%s names rule %q, want %q", name, got, want)
		}
	}

	w, pc = bookinfo(t)
	r = generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	if got := configRef(find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, "outbound|9080||reviews.default.svc.cluster.local")); got != "" {
		t.Errorf("without DestinationRules the reviews cluster names rule %q", got)
	}
}
