package analyzers

import (
	"sort"
	"strings"
	"testing"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/resource"
)

// run analyses the YAML documents with one analyzer and returns each
// message as "CODE Kind name.namespace field".
func run(t *testing.T, a analyze.Analyzer, docs ...string) []string {
	t.Helper()
	snap := snapshot(t, docs)
	var out []string
	for _, m := range analyze.Run(snap, []analyze.Analyzer{a}) {
		s := m.Type.Code + " " + m.Resource.Ref()
		if m.Field != "" {
			s += " " + m.Field
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// texts returns the messages' texts.
func texts(t *testing.T, a analyze.Analyzer, docs ...string) []string {
	t.Helper()
	snap := snapshot(t, docs)
	var out []string
	for _, m := range analyze.Run(snap, []analyze.Analyzer{a}) {
		out = append(out, m.Text)
	}
	return out
}

func expect(t *testing.T, name string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got: %q\nwant: %q", name, got, want)
	}
}

const (
	svcReviews = `{apiVersion: v1, kind: Service, metadata: {name: reviews, namespace: default}, spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}}`
	depReviews = `{apiVersion: apps/v1, kind: Deployment, metadata: {name: reviews-v1, namespace: default}, spec: {selector: {matchLabels: {app: reviews}}, template: {metadata: {labels: {app: reviews, version: v1}}, spec: {containers: [{name: reviews, image: x}]}}}}`
	drReviews  = `{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: reviews, namespace: default}, spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}}`
)

func vs(name, spec string) string {
	return `{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: ` + name + `, namespace: default}, spec: ` + spec + `}`
}

// runUnder analyses the YAML documents with one analyzer under mesh.
func runUnder(t *testing.T, mesh *analyze.Mesh, a analyze.Analyzer, docs ...string) []analyze.Message {
	t.Helper()
	snap := snapshot(t, docs)
	snap.Mesh = mesh
	return analyze.Run(snap, []analyze.Analyzer{a})
}

// snapshot builds the YAML documents into a snapshot, as files given to
// analyze are.
func snapshot(t *testing.T, docs []string) *analyze.Snapshot {
	t.Helper()
	raws, err := resource.ReadBytes("test.yaml", []byte(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := analyze.Build(raws, analyze.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
