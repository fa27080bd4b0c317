// Package upgrade holds `mesh upgrade`.
package upgrade

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/commands/installview"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/precheck"
	"mesh.dev/mesh/internal/upgrade"
)

// Options are the flags of `mesh upgrade`.
type Options struct {
	*cli.Context
	cmdutil.RenderFlags
	cmdutil.ApplyFlags
	Force bool

	rendered *install.Rendered
}

// NewCommand builds `mesh upgrade`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx}
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade an installed mesh to this version's rendering",
		Long: `Upgrade installs this version's rendering over an installed revision.
It shows the version change and refuses a downgrade or a skip of more than one
minor version unless --force is given, runs the prechecks, prunes what the new
rendering no longer has, waits for readiness and verifies the result. Without
-f or --set it keeps the installed spec; with them it renders those instead.`,
		Example: `  mesh upgrade -y
  mesh upgrade --set profile=minimal -y
  mesh upgrade --revision canary`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Run(o),
	}
	o.RenderFlags.AddFlags(cmd, false)
	o.ApplyFlags.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Force, "force", false, "allow a downgrade or a skip of more than one minor version")
	return cmd
}

// Complete renders the mesh when -f or --set are given; otherwise the
// upgrade renders the installed spec.
func (o *Options) Complete(*cobra.Command, []string) error {
	if !o.Given() {
		return nil
	}
	op, warnings, err := o.Load()
	if err != nil {
		return err
	}
	o.rendered, err = install.Render(op, warnings)
	return err
}

// Validate checks flags before anything touches the cluster.
func (o *Options) Validate() error { return o.ApplyFlags.Validate(o.In) }

// Run upgrades, printing each step as it completes.
func (o *Options) Run(parent context.Context) error {
	ctx, stop, c, err := cmdutil.Connect(parent, o.Context)
	if err != nil {
		return err
	}
	defer stop()
	out := o.ProgressOut(o.Context)
	colors := cli.NewColors(out, o.Color)
	up := &upgrade.Upgrade{
		Installer: install.Installer{Client: c, Wait: o.Wait, ReadinessTimeout: o.ReadinessTimeout, DryRun: o.DryRun},
		Revision:  o.Revision,
		Force:     o.Force,
		Rendered:  o.rendered,
		Planned: func(p *upgrade.Plan) {
			if p.Rendered != nil {
				cmdutil.PrintWarnings(o.Context, p.Rendered.Warnings)
			}
			fmt.Fprintf(out, "Revision %s: %s → %s (%s)", p.Revision, orUnknown(p.Version.From), p.Version.To, p.Version.Kind)
			if p.FromProfile != "" && p.FromProfile != p.ToProfile {
				fmt.Fprintf(out, ", profile %s → %s", p.FromProfile, p.ToProfile)
			}
			fmt.Fprintln(out)
		},
		Prechecked: func(rep *precheck.Report) {
			if rep.Installable {
				fmt.Fprintf(out, "%s Prechecks passed\n", colors.OK("✔"))
				return
			}
			installview.PrintReport(out, colors, rep)
		},
	}
	if o.Asking() {
		up.Confirm = func(q string) (bool, error) { return cmdutil.Confirm(o.In, out, q) }
	}
	closeView := installview.Attach(&up.Installer, out, o.Color)
	res, err := up.Run(ctx)
	closeView()
	var policy *install.VersionPolicyError
	var prechecks *upgrade.PrecheckError
	var verify *upgrade.VerifyError
	switch {
	case errors.As(err, &policy):
		fmt.Fprintf(out, "%s Revision %s: %s → %s\n", colors.Bad("✘"), res.Plan.Revision, policy.Change.From, policy.Change.To)
		return err
	case errors.As(err, &prechecks):
		return fmt.Errorf("prechecks failed (listed above): nothing was changed")
	case errors.As(err, &verify):
		installview.PrintVerify(out, colors, verify.Result)
		return err
	case err != nil && res.Install != nil:
		return installview.InstallError(out, o.Color, err)
	case err != nil:
		return err
	case res.Cancelled:
		fmt.Fprintln(out, "Cancelled: nothing was changed.")
		return nil
	}
	if res.Verify != nil {
		fmt.Fprintf(out, "%s Verified: all %d objects of revision %s are as rendered and ready\n", colors.OK("✔"), res.Verify.Checked, res.Verify.Revision)
	}
	return installview.PrintResult(o.Out, out, o.Color, o.Output, res.Install)
}

func orUnknown(v string) string {
	if v == "" {
		return "(unknown version)"
	}
	return v
}
