// Package verifyinstall holds `mesh verify-install`.
package verifyinstall

import (
	"context"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/commands/installview"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// Options are the flags of `mesh verify-install`.
type Options struct {
	*cli.Context
	cmdutil.RenderFlags
	Output *cli.Output

	rendered *install.Rendered
	client   *kube.Client
}

// NewCommand builds `mesh verify-install`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:   "verify-install",
		Short: "Check that the cluster holds the mesh as rendered",
		Long: `verify-install renders the installed spec (or the one -f/--set give)
and compares it with the cluster: it lists objects that are missing, fields
that drifted from what mesh set (fields the server defaults are not compared),
objects an install would prune, and workloads that are not ready. It exits 1
when anything is off.`,
		Example: `  mesh verify-install
  mesh verify-install --revision canary -o json`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Run(o),
	}
	o.RenderFlags.AddFlags(cmd, false)
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete renders -f/--set when given (without them the cluster's record
// is rendered in Run) and builds the cluster client.
func (o *Options) Complete(*cobra.Command, []string) error {
	if o.Given() {
		op, warnings, err := o.Load()
		if err != nil {
			return err
		}
		if o.rendered, err = install.Render(op, warnings); err != nil {
			return err
		}
	}
	var err error
	o.client, err = kube.FromCLI(o.Context)
	return err
}

// Validate has nothing to check beyond what the flags checked when parsed.
func (o *Options) Validate() error { return nil }

// Run compares and prints.
func (o *Options) Run(ctx context.Context) error {
	if _, err := o.client.ServerVersion(ctx); err != nil {
		return err
	}
	r := o.rendered
	if r == nil {
		var err error
		if r, err = install.RenderInstalled(ctx, o.client, o.Revision); err != nil {
			return err
		}
	}
	cmdutil.PrintWarnings(o.Context, r.Warnings)
	res, err := (&install.Verifier{Client: o.client}).Run(ctx, r.Manifest)
	if err != nil {
		return err
	}
	if err := o.Output.Write(o.Out, res, func() error {
		installview.PrintVerify(o.Out, cli.NewColors(o.Out, o.Color), res)
		return nil
	}); err != nil {
		return err
	}
	if !res.Clean() {
		return &cli.SilentError{Code: cli.ExitError}
	}
	return nil
}
