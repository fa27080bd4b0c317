package profile

import (
	"fmt"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/manifest"
	"mesh.dev/mesh/internal/cli"
	imanifest "mesh.dev/mesh/internal/manifest"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/profiles"
)

// DiffOptions holds the flags of `mesh profile diff`.
type DiffOptions struct {
	*cli.Context
	A, B   string
	Output string
}

func newDiffCommand(ctx *cli.Context) *cobra.Command {
	o := &DiffOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:       "diff PROFILE_A PROFILE_B",
		Short:     "Show how two profiles' merged specs differ",
		Example:   `  mesh profile diff default demo`,
		Args:      cobra.ExactArgs(2),
		ValidArgs: profiles.Names(),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.A, o.B = args[0], args[1]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// Validate checks both profile names and the output format.
func (o *DiffOptions) Validate() error {
	for _, p := range []string{o.A, o.B} {
		if _, ok := profiles.Get(p); !ok {
			return cli.Usage(&spec.UnknownProfileError{Name: p, Valid: profiles.Names()})
		}
	}
	return cli.ValidateOutput(o.Output, cli.OutputJSON, cli.OutputYAML)
}

// Run prints the changed spec fields, one per line.
func (o *DiffOptions) Run() error {
	trees := make([]map[string]any, 2)
	for i, p := range []string{o.A, o.B} {
		op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=" + p}})
		if err != nil {
			return manifest.LoadError(err)
		}
		t, err := op.Tree()
		if err != nil {
			return err
		}
		trees[i] = t
	}
	changes := imanifest.Values(trees[0]["spec"], trees[1]["spec"])
	if o.Output != "" {
		return cli.PrintStructured(o.Out, o.Output, changes)
	}
	if len(changes) == 0 {
		_, err := fmt.Fprintf(o.Out, "Profiles %s and %s are the same.\n", o.A, o.B)
		return err
	}
	fmt.Fprintf(o.Out, "Differences from %s to %s (spec paths):\n", o.A, o.B)
	for _, c := range changes {
		c.Path = "spec." + c.Path
		fmt.Fprintf(o.Out, "  %s\n", manifest.FormatChange(c))
	}
	return nil
}
