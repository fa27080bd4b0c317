package profile

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	imanifest "mesh.dev/mesh/internal/manifest"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/profiles"
)

// DiffOptions holds the flags of `mesh profile diff`.
type DiffOptions struct {
	*cli.Context
	A, B   string
	Output *cli.Output
}

func newDiffCommand(ctx *cli.Context) *cobra.Command {
	o := &DiffOptions{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:       "diff PROFILE_A PROFILE_B",
		Short:     "Show how two profiles' merged specs differ",
		Example:   `  mesh profile diff default demo`,
		Args:      cobra.ExactArgs(2),
		ValidArgs: profiles.Names(),
		RunE:      cmdutil.Run(o),
	}
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete takes the two profile names.
func (o *DiffOptions) Complete(_ *cobra.Command, args []string) error {
	o.A, o.B = args[0], args[1]
	return nil
}

// Validate checks both profile names.
func (o *DiffOptions) Validate() error {
	for _, p := range []string{o.A, o.B} {
		if _, ok := profiles.Get(p); !ok {
			return cli.Usage(&spec.UnknownProfileError{Name: p, Valid: profiles.Names()})
		}
	}
	return nil
}

// Run prints the changed spec fields, one per line.
func (o *DiffOptions) Run(context.Context) error {
	trees := make([]map[string]any, 2)
	for i, p := range []string{o.A, o.B} {
		op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=" + p}})
		if err != nil {
			return cmdutil.LoadError(err)
		}
		t, err := op.Tree()
		if err != nil {
			return err
		}
		trees[i] = t
	}
	changes := imanifest.Values(trees[0]["spec"], trees[1]["spec"])
	return o.Output.Write(o.Out, changes, func() error { return o.print(changes) })
}

func (o *DiffOptions) print(changes []imanifest.FieldChange) error {
	if len(changes) == 0 {
		_, err := fmt.Fprintf(o.Out, "Profiles %s and %s are the same.\n", o.A, o.B)
		return err
	}
	fmt.Fprintf(o.Out, "Differences from %s to %s (spec paths):\n", o.A, o.B)
	for _, c := range changes {
		c.Path = "spec." + c.Path
		fmt.Fprintf(o.Out, "  %s\n", imanifest.FormatChange(c))
	}
	return nil
}
