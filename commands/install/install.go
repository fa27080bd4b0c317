// Package install holds `mesh install`.
package install

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/commands/installview"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
)

// Options are the flags of `mesh install`.
type Options struct {
	*cli.Context
	cmdutil.RenderFlags
	cmdutil.ApplyFlags

	rendered *install.Rendered
}

// NewCommand builds `mesh install`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the mesh into the cluster",
		Long: `Install renders the mesh for a profile (with -f overlays and --set
overrides) and applies it to the cluster with server-side apply, component by
component (base, pilot, gateways), waiting for each to be ready. Running it
again changes nothing; objects a new rendering no longer has are pruned.`,
		Example: `  mesh install --set profile=demo -y
  mesh install --revision canary -y
  mesh install -f my-mesh.yaml --dry-run`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Run(o),
	}
	o.RenderFlags.AddFlags(cmd, false)
	o.ApplyFlags.AddFlags(cmd)
	return cmd
}

// Complete renders the mesh.
func (o *Options) Complete(*cobra.Command, []string) error {
	op, warnings, err := o.Load()
	if err != nil {
		return err
	}
	o.rendered, err = install.Render(op, warnings)
	return err
}

// Validate checks flags before anything touches the cluster.
func (o *Options) Validate() error { return o.ApplyFlags.Validate(o.In) }

// Run installs and prints the outcome.
func (o *Options) Run(parent context.Context) error {
	cmdutil.PrintWarnings(o.Context, o.rendered.Warnings)
	ctx, stop, c, err := cmdutil.Connect(parent, o.Context)
	if err != nil {
		return err
	}
	defer stop()
	out := o.ProgressOut(o.Context)
	a := &install.Install{Installer: install.Installer{
		Client:           c,
		Wait:             o.Wait,
		ReadinessTimeout: o.ReadinessTimeout,
		DryRun:           o.DryRun,
	}}
	if o.Asking() {
		a.Confirm = func(q string) (bool, error) { return cmdutil.Confirm(o.In, out, q) }
	}
	closeView := installview.Attach(&a.Installer, out, o.Color)
	res, err := a.Run(ctx, o.rendered)
	closeView()
	if err != nil {
		return installview.InstallError(out, o.Color, err)
	}
	if res.Cancelled {
		fmt.Fprintln(out, "Cancelled: nothing was changed.")
		return nil
	}
	return installview.PrintResult(o.Out, out, o.Color, o.Output, res.Result)
}
