package agent

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/version"
)

// The xDS node mesh-proxy sends pilot carries Istio's node metadata: the
// environment's ISTIO_META_* (strings) and ISTIO_METAJSON_* (JSON values)
// under their keys, its own release as ISTIO_VERSION and its cluster as
// CLUSTER_ID; a bootstrap's keys are kept as written.
func TestXDSNodeMetadata(t *testing.T) {
	env, err := NodeMetadataFromEnv([]string{
		"ISTIO_META_CLUSTER_ID=east", "ISTIO_META_INTERCEPTION_MODE=TPROXY",
		`ISTIO_METAJSON_LABELS={"app":"reviews"}`, "ISTIO_META_=x", "HOME=/root", "ISTIO_META_MESH_ID=a=b",
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{NodeID: "sidecar~198.18.0.5~reviews-v1-0.default~default.svc.cluster.local", NodeMetadata: env, AdminAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	f := p.node.GetMetadata().GetFields()
	for k, want := range map[string]string{"CLUSTER_ID": "east", "INTERCEPTION_MODE": "TPROXY", "MESH_ID": "a=b", "ISTIO_VERSION": version.Version} {
		if got := f[k].GetStringValue(); got != want {
			t.Errorf("node metadata %s = %q, want %q", k, got, want)
		}
	}
	if got := f["LABELS"].GetStructValue().GetFields()["app"].GetStringValue(); got != "reviews" {
		t.Errorf("LABELS from ISTIO_METAJSON_LABELS: %v", f["LABELS"])
	}
	if len(f) != 5 {
		t.Errorf("node metadata %v: want the four keys of the environment and ISTIO_VERSION", f)
	}

	// A bootstrap's node keeps its own values; the cluster comes from the
	// workload when nothing names it.
	boot, _ := structpb.NewStruct(map[string]any{"ISTIO_VERSION": "1.24.2", "INTERCEPTION_MODE": "REDIRECT"})
	b := &bootstrapv3.Bootstrap{Node: &corev3.Node{Id: "sidecar~198.18.0.6~ratings-v1-0.default~default.svc.cluster.local", Metadata: boot}}
	q, err := New(Options{Bootstrap: b, NodeMetadata: map[string]*structpb.Value{"INTERCEPTION_MODE": structpb.NewStringValue("TPROXY")},
		Workload: Workload{Cluster: "west"}, AdminAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	f = q.node.GetMetadata().GetFields()
	if f["ISTIO_VERSION"].GetStringValue() != "1.24.2" || f["INTERCEPTION_MODE"].GetStringValue() != "REDIRECT" || f["CLUSTER_ID"].GetStringValue() != "west" {
		t.Errorf("bootstrap node metadata %v: want its ISTIO_VERSION and INTERCEPTION_MODE kept, CLUSTER_ID west", f)
	}

	if _, err := NodeMetadataFromEnv([]string{"ISTIO_METAJSON_LABELS={app"}); err == nil || !strings.Contains(err.Error(), "ISTIO_METAJSON_LABELS") {
		t.Errorf("malformed JSON: error %v, want one naming ISTIO_METAJSON_LABELS", err)
	}
}
