package profile

import (
	"context"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/profiles"
)

// DumpOptions holds the flags of `mesh profile dump`.
type DumpOptions struct {
	*cli.Context
	cmdutil.RenderFlags
	Profile    string
	ConfigPath string
	Output     *cli.Output
}

func newDumpCommand(ctx *cli.Context) *cobra.Command {
	o := &DumpOptions{Context: ctx, Output: cli.NewOutput(cli.OutputYAML, cli.OutputJSON, cli.OutputYAML)}
	cmd := &cobra.Command{
		Use:   "dump [PROFILE]",
		Short: "Print the merged MeshOperator spec of a profile",
		Long: `Print the MeshOperator a profile expands to, with -f overlays and --set
flags applied, or just the part of it at --config-path (a --set style path
relative to spec).`,
		Example: `  mesh profile dump demo
  mesh profile dump demo --config-path components.ingressGateways -o json`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: profiles.Names(),
		RunE:      cmdutil.Run(o),
	}
	o.RenderFlags.AddFlags(cmd, true)
	cmd.Flags().StringVarP(&o.ConfigPath, "config-path", "p", "", "print only the value at this spec path, e.g. components.pilot.k8s")
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete takes the profile argument.
func (o *DumpOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Profile = args[0]
	}
	return nil
}

// Validate checks the profile name and the path before anything is loaded.
func (o *DumpOptions) Validate() error {
	if o.Profile != "" {
		if _, ok := profiles.Get(o.Profile); !ok {
			return cli.Usage(&spec.UnknownProfileError{Name: o.Profile, Valid: profiles.Names()})
		}
		// The argument is a --set that comes first, so explicit --set profile=x still wins.
		o.Sets = append([]string{"profile=" + o.Profile}, o.Sets...)
	}
	if o.ConfigPath != "" {
		if err := spec.CheckPath(o.ConfigPath); err != nil {
			return cli.Usagef("--config-path: %v", err)
		}
	}
	return nil
}

// Run prints the spec or the part of it at --config-path.
func (o *DumpOptions) Run(context.Context) error {
	op, _, err := o.Load()
	if err != nil {
		return err
	}
	tree, err := op.Tree()
	if err != nil {
		return err
	}
	var out any = tree
	if o.ConfigPath != "" {
		p, _ := spec.ParsePath(o.ConfigPath)
		v, ok := spec.Get(tree["spec"], p)
		if !ok {
			return cli.Usagef("--config-path %s: not set in this profile", o.ConfigPath)
		}
		out = v
	}
	return cli.PrintStructured(o.Out, o.Output.Format(), out)
}
