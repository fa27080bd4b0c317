// Package upgrade holds `mesh upgrade`.
package upgrade

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	installcmd "mesh.dev/mesh/commands/install"
	precheckcmd "mesh.dev/mesh/commands/precheck"
	"mesh.dev/mesh/commands/verifyinstall"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/precheck"
	"mesh.dev/mesh/internal/version"
)

// Options are the flags of `mesh upgrade`.
type Options struct {
	*cli.Context
	installcmd.Source
	installcmd.Apply
	Force bool

	client *kube.Client
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
rendering no longer has, and waits for readiness. Without -f or --set it keeps
the installed spec; with them it renders those instead.`,
		Example: `  mesh upgrade -y
  mesh upgrade --set profile=minimal -y
  mesh upgrade --revision canary`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.Source.AddFlags(cmd.Flags())
	o.Apply.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.Force, "force", false, "allow a downgrade or a skip of more than one minor version")
	return cmd
}

// Complete renders the mesh when -f or --set are given.
func (o *Options) Complete() error {
	if o.Source.Given() {
		if err := o.Source.Load(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks flags before anything touches the cluster.
func (o *Options) Validate() error { return o.Apply.Validate(o.In) }

// Run shows the version change, prechecks, asks and installs.
func (o *Options) Run(parent context.Context) error {
	ctx, stop, c, err := installcmd.Connect(parent, o.Context)
	if err != nil {
		return err
	}
	defer stop()
	o.client = c
	out := o.ProgressOut(o.Context)
	colors := cli.NewColors(out, o.Color)
	up := &install.Upgrader{Force: o.Force, Installer: install.Installer{
		Client: o.client, Wait: o.Wait, ReadinessTimeout: o.ReadinessTimeout, DryRun: o.DryRun,
	}}
	target := version.Get().Version
	rec, change, err := up.PlanUpgrade(ctx, o.Revision, target)
	var policy *install.VersionPolicyError
	switch {
	case errors.As(err, &policy):
		fmt.Fprintf(out, "%s Revision %s: %s → %s\n", colors.Bad("✘"), install.RevisionLabel(o.Revision), change.From, change.To)
		return err
	case err != nil:
		return err
	}
	if !o.Source.Given() {
		if err := verifyinstall.LoadInstalled(ctx, o.client, &o.Source); err != nil {
			return err
		}
	}
	for _, w := range o.Warnings {
		fmt.Fprintf(o.ErrOut, "%s %s\n", o.ErrColors().Warn("warning:"), w)
	}
	fmt.Fprintf(out, "Revision %s: %s → %s (%s)", rec.Revision, orUnknown(change.From), change.To, change.Kind)
	if p, _ := rec.Spec["profile"].(string); p != "" && p != o.Operator.Spec.Profile {
		fmt.Fprintf(out, ", profile %s → %s", p, o.Operator.Spec.Profile)
	}
	fmt.Fprintln(out)

	rep, err := (&precheck.Checker{Client: o.client, Manifest: o.Manifest, Mode: precheck.ForUpgrade}).Run(ctx)
	if err != nil {
		return err
	}
	if !rep.Installable {
		precheckcmd.PrintReport(out, colors, rep)
		return fmt.Errorf("prechecks failed (listed above): nothing was changed")
	}
	fmt.Fprintf(out, "%s Prechecks passed\n", colors.OK("✔"))
	if !o.Yes && !o.DryRun {
		ok, err := installcmd.Confirm(o.In, out, fmt.Sprintf("Upgrade revision %s in %s?", rec.Revision, o.client.Target))
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(out, "Cancelled: nothing was changed.")
			return nil
		}
	}
	res, err := installcmd.RunInstaller(ctx, o.Context, out, &up.Installer, o.Manifest, o.State)
	if err != nil {
		return err
	}
	return installcmd.PrintResult(o.Context, out, o.Output, res)
}

func orUnknown(v string) string {
	if v == "" {
		return "(unknown version)"
	}
	return v
}
