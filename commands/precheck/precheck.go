// Package precheck holds `mesh precheck`.
package precheck

import (
	"context"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/commands/installview"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/precheck"
)

// Options are the flags of `mesh precheck`.
type Options struct {
	*cli.Context
	cmdutil.RenderFlags
	Output *cli.Output

	rendered *install.Rendered
	client   *kube.Client
}

// NewCommand builds `mesh precheck`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:   "precheck",
		Short: "Check whether the cluster can take a mesh install",
		Long: `Precheck checks the cluster before an install: the Kubernetes version,
the caller's permissions for everything the install applies, other control
planes, CRD and webhook conflicts, and the target namespace. It exits 0 when
the mesh can be installed and 1 when it cannot.`,
		Example: `  mesh precheck
  mesh precheck --set profile=demo -o json`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Run(o),
	}
	o.RenderFlags.AddFlags(cmd, false)
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete renders the mesh to check for and builds the cluster client.
func (o *Options) Complete(*cobra.Command, []string) error {
	op, warnings, err := o.Load()
	if err != nil {
		return err
	}
	if o.rendered, err = install.Render(op, warnings); err != nil {
		return err
	}
	o.client, err = kube.FromCLI(o.Context)
	return err
}

// Validate has nothing to check beyond what the flags checked when parsed.
func (o *Options) Validate() error { return nil }

// Run runs the checks and exits 1 when the mesh cannot be installed.
func (o *Options) Run(ctx context.Context) error {
	cmdutil.PrintWarnings(o.Context, o.rendered.Warnings)
	chk := &precheck.Checker{Client: o.client, Manifest: o.rendered.Manifest, Mode: precheck.ForInstall}
	rep, err := chk.Run(ctx)
	if err != nil {
		return err
	}
	if err := o.Output.Write(o.Out, rep, func() error {
		installview.PrintReport(o.Out, cli.NewColors(o.Out, o.Color), rep)
		return nil
	}); err != nil {
		return err
	}
	if !rep.Installable {
		return &cli.SilentError{Code: cli.ExitError}
	}
	return nil
}
