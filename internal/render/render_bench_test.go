package render

import (
	"testing"

	"mesh.dev/mesh/internal/spec"
)

// BenchmarkRenderDemo is the in-process render cost `make bench` reports
// (100 renders must stay under 2 s).
func BenchmarkRenderDemo(b *testing.B) {
	op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=demo"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(op); err != nil {
			b.Fatal(err)
		}
	}
}
