package analyze

import (
	"strings"
	"testing"

	"mesh.dev/mesh/internal/resource"
)

type reportsThenPanics struct{}

func (reportsThenPanics) Metadata() Metadata { return Metadata{Name: "test.Panics"} }
func (reportsThenPanics) Analyze(ctx *Context) {
	ctx.Report(SchemaWarning, ctx.Resources[0], "", "before the failure")
	var m map[string]int
	m["boom"]++
}

type reportsOne struct{}

func (reportsOne) Metadata() Metadata { return Metadata{Name: "test.Fine"} }
func (reportsOne) Analyze(ctx *Context) {
	ctx.Report(NoMatchingWorkloadsFound, ctx.Resources[0], "", "a finding")
}

// A failing analyzer is IST0001, never filtered by namespace, and the
// other analyzers' findings (and its own before the failure) still count.
func TestAnalyzerFailureIsInternalError(t *testing.T) {
	raws, err := resource.ReadBytes("x.yaml", []byte(`{apiVersion: v1, kind: Service, metadata: {name: a, namespace: shop}, spec: {}}`))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Build(raws, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msgs := Filter{Namespaces: map[string]bool{"elsewhere": true}}.Apply(Run(snap, []Analyzer{reportsThenPanics{}, reportsOne{}}))
	if len(msgs) != 1 || msgs[0].Type != InternalError || !strings.Contains(msgs[0].Text, "test.Panics") {
		t.Fatalf("filtered to another namespace: %v", msgs)
	}
	all := Run(snap, []Analyzer{reportsThenPanics{}, reportsOne{}})
	var codes []string
	for _, m := range all {
		codes = append(codes, m.Type.Code)
	}
	if got := strings.Join(codes, " "); !strings.Contains(got, "IST0001") || !strings.Contains(got, "IST0127") || !strings.Contains(got, "IST0133") {
		t.Errorf("got %s, want IST0001 with the findings of both analyzers", got)
	}
}
