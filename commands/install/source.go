package install

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/internal/version"
)

// Source is where a command's mesh rendering comes from: a profile, -f
// overlays and --set flags, for one revision. install, upgrade, precheck and
// verify-install share it so the flags mean the same everywhere.
type Source struct {
	Files    []string
	Sets     []string
	Revision string

	// Filled by Load.
	Operator *spec.MeshOperator
	Manifest install.Manifest
	State    install.State
	Warnings []string
}

// AddFlags binds -f, --set and --revision.
func (s *Source) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&s.Files, "filename", "f", nil, "MeshOperator (or IstioOperator) overlay file; repeat to merge several in order")
	fs.StringArrayVar(&s.Sets, "set", nil, "override one field of the MeshOperator spec, e.g. --set profile=demo; repeatable")
	fs.StringVar(&s.Revision, "revision", "", "control plane revision, to run beside others (e.g. canary)")
}

// Load merges the spec and renders it, mapping bad flags to usage errors and bad files to data errors.
func (s *Source) Load() error {
	op, warnings, err := spec.Load(spec.LoadOptions{Files: s.Files, Sets: s.Sets, Revision: s.Revision})
	if err != nil {
		return classify(err)
	}
	return s.render(op, warnings)
}

func (s *Source) render(op *spec.MeshOperator, warnings []string) error {
	m, err := render.Render(op)
	if err != nil {
		return fmt.Errorf("render the mesh: %w", err)
	}
	comps := make([]install.Component, 0, len(m.Components))
	for _, c := range m.Components {
		comps = append(comps, install.Component{Name: c.Name, Objects: c.Objects})
	}
	tree, err := op.Tree()
	if err != nil {
		return fmt.Errorf("record the mesh spec: %w", err)
	}
	specTree, _ := tree["spec"].(map[string]any)
	s.Operator = op
	s.Manifest = install.Prepare(op.RevisionLabel(), comps)
	s.State = install.State{Version: version.Get().Version, Spec: specTree}
	s.Warnings = warnings
	return nil
}

func classify(err error) error {
	var setErr *spec.SetError
	var fileErr *spec.FileError
	var profErr *spec.UnknownProfileError
	var invalid *spec.InvalidSpecError
	switch {
	case errors.As(err, &setErr), errors.As(err, &profErr):
		return cli.Usage(err)
	case errors.As(err, &fileErr), errors.As(err, &invalid):
		return cli.Data(err)
	}
	return err
}

// Given reports whether the user passed any rendering flag.
func (s *Source) Given() bool { return len(s.Files) > 0 || len(s.Sets) > 0 }

// LoadRecord renders the spec an installed-state record holds, so commands
// run without -f/--set work on what is installed.
func (s *Source) LoadRecord(rec *install.Record) error {
	b, err := json.Marshal(map[string]any{"apiVersion": spec.APIVersion, "kind": spec.Kind, "spec": rec.Spec})
	if err != nil {
		return fmt.Errorf("read the installed spec: %w", err)
	}
	op := &spec.MeshOperator{}
	if err := json.Unmarshal(b, op); err != nil {
		return fmt.Errorf("read the installed spec of revision %s: %w", rec.Revision, err)
	}
	if s.Revision != "" {
		op.Spec.Revision = s.Revision
	}
	return s.render(op, nil)
}
