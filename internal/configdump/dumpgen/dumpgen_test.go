package dumpgen

import (
	"bytes"
	"testing"

	"mesh.dev/mesh/internal/configdump"
)

func TestGeneratedDumpParses(t *testing.T) {
	spec := Spec{Services: 6, Subsets: 2, EndpointsPerCluster: 3, Ports: 2, Namespaces: 2}
	var buf bytes.Buffer
	if err := Write(&buf, spec); err != nil {
		t.Fatal(err)
	}
	d, err := configdump.Parse(buf.Bytes(), configdump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(d.Of(configdump.KindCluster)); got != spec.Clusters() {
		t.Errorf("clusters: %d, want %d", got, spec.Clusters())
	}
	if got := len(d.Of(configdump.KindEndpoint)); got != spec.Clusters() {
		t.Errorf("endpoint assignments: %d, want %d", got, spec.Clusters())
	}
	if got := len(d.Of(configdump.KindListener)); got != spec.Ports {
		t.Errorf("listeners: %d", got)
	}
	for _, r := range d.Of(configdump.KindCluster) {
		if r.Message == nil || len(r.UnknownTypes) != 1 {
			t.Fatalf("cluster %s: typed %v, unknown types %v (the metadata exchange filter should be the only one)", r.Name, r.Message != nil, r.UnknownTypes)
		}
	}
}
