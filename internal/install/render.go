package install

import (
	"context"
	"encoding/json"
	"fmt"

	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/internal/version"
)

// Rendered is a mesh spec made ready to install: the spec, its manifest in
// apply order and the state the installed-state record keeps.
type Rendered struct {
	Operator *spec.MeshOperator
	Manifest Manifest
	State    State
	// Warnings are what loading the spec reported (IstioOperator fields without an equivalent).
	Warnings []string
}

// Render renders op through the embedded charts for installing.
func Render(op *spec.MeshOperator, warnings []string) (*Rendered, error) {
	m, err := render.Render(op)
	if err != nil {
		return nil, fmt.Errorf("render the mesh: %w", err)
	}
	comps := make([]Component, 0, len(m.Components))
	for _, c := range m.Components {
		comps = append(comps, Component{Name: c.Name, Objects: c.Objects})
	}
	tree, err := op.Tree()
	if err != nil {
		return nil, fmt.Errorf("record the mesh spec: %w", err)
	}
	specTree, _ := tree["spec"].(map[string]any)
	return &Rendered{
		Operator: op,
		Manifest: Prepare(op.RevisionLabel(), comps),
		State:    State{Version: version.Get().Version, Spec: specTree},
		Warnings: warnings,
	}, nil
}

// RenderRecord renders the spec an installed-state record holds, so
// commands given no -f/--set work on what is installed; revision, when not
// empty, overrides the record's.
func RenderRecord(rec *Record, revision string) (*Rendered, error) {
	b, err := json.Marshal(map[string]any{"apiVersion": spec.APIVersion, "kind": spec.Kind, "spec": rec.Spec})
	if err != nil {
		return nil, fmt.Errorf("read the installed spec: %w", err)
	}
	op := &spec.MeshOperator{}
	if err := json.Unmarshal(b, op); err != nil {
		return nil, fmt.Errorf("read the installed spec of revision %s: %w", rec.Revision, err)
	}
	if revision != "" {
		op.Spec.Revision = revision
	}
	return Render(op, nil)
}

// RenderInstalled renders the installed spec of revision ("" for the
// default), from the cluster's installed-state record.
func RenderInstalled(ctx context.Context, c *kube.Client, revision string) (*Rendered, error) {
	recs, err := Records(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Revision == RevisionLabel(revision) {
			return RenderRecord(&r, revision)
		}
	}
	return nil, &NotInstalledError{Revision: RevisionLabel(revision), Installed: Revisions(recs)}
}
