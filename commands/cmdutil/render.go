package cmdutil

import (
	"errors"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/profiles"
)

// RenderFlags choose what a command renders: a profile, -f overlays and
// --set overrides, for one revision. Every command that renders the mesh
// binds these, so the same arguments mean the same, and fail the same, everywhere.
type RenderFlags struct {
	Files    []string
	Sets     []string
	Revision string
}

// RevisionShorthand gives --revision its -r on the commands that have had it.
type RevisionShorthand bool

// AddFlags binds --set, -f and --revision (with -r when short is true).
func (f *RenderFlags) AddFlags(cmd *cobra.Command, short RevisionShorthand) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.Sets, "set", nil, "set a MeshOperator spec path, e.g. --set profile=demo or --set components.ingressGateways[name:mesh-ingressgateway].enabled=false (repeatable; wins over -f)")
	fs.StringArrayVarP(&f.Files, "filename", "f", nil, "MeshOperator or IstioOperator overlay file, merged over the profile in order (repeatable)")
	shorthand := ""
	if short {
		shorthand = "r"
	}
	fs.VarP(cli.NewRevision(&f.Revision, false), "revision", shorthand, "control plane revision, so several can run side by side (sets spec.revision)")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml")
	_ = cmd.RegisterFlagCompletionFunc("set", func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, p := range profiles.Names() {
			out = append(out, "profile="+p)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
}

// Given reports whether any -f or --set was passed.
func (f *RenderFlags) Given() bool { return len(f.Files) > 0 || len(f.Sets) > 0 }

// Load merges the profile, the files and --set into a MeshOperator, with
// its errors classified for exit codes (see LoadError).
func (f *RenderFlags) Load() (*spec.MeshOperator, []string, error) {
	op, warnings, err := spec.Load(spec.LoadOptions{Files: f.Files, Sets: f.Sets, Revision: f.Revision})
	return op, warnings, LoadError(err)
}

// LoadError classifies an error of spec.Load, in the one place that does:
// a mistake in a --set argument (an unknown path or profile, a bad value)
// is bad usage (exit 64); everything else spec.Load refuses comes from the
// input it read (a file that cannot be read or parsed, a profile a file
// names that does not exist, a merged spec that is not installable) and is
// bad input data (exit 65).
func LoadError(err error) error {
	if err == nil {
		return nil
	}
	var setErr *spec.SetError
	if errors.As(err, &setErr) {
		return cli.Usage(err)
	}
	return cli.Data(err)
}
