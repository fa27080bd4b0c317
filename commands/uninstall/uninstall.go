// Package uninstall holds `mesh uninstall`.
package uninstall

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
)

// Options are the flags of `mesh uninstall`.
type Options struct {
	*cli.Context
	cmdutil.ChangeFlags
	Revision string
	Purge    bool
	Timeout  time.Duration
}

// NewCommand builds `mesh uninstall`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx}
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the mesh from the cluster",
		Long: `Uninstall removes what install created for one revision. User
configuration (VirtualServices, DestinationRules and the other Istio resources)
and the CRDs that hold it stay, unless --purge is given; --purge says how many
user resources it is about to delete before it asks.`,
		Example: `  mesh uninstall -y
  mesh uninstall --revision canary -y
  mesh uninstall --purge`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Run(o),
	}
	cmd.Flags().Var(cli.NewRevision(&o.Revision, true), "revision", "the control plane revision to remove (default: the default revision)")
	cmd.Flags().BoolVar(&o.Purge, "purge", false, "also delete all user configuration of the mesh's CRDs, and the CRDs")
	o.ChangeFlags.AddFlags(cmd, "show what would be deleted, delete nothing",
		"wait until the namespace (and with --purge the CRDs) are gone")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long to wait for deletions")
	return cmd
}

// Complete has nothing to derive before the cluster is asked.
func (o *Options) Complete(*cobra.Command, []string) error { return nil }

// Validate checks flags before anything touches the cluster.
func (o *Options) Validate() error {
	if o.Timeout <= 0 {
		return cli.Usagef("--timeout must be positive, got %s", o.Timeout)
	}
	return o.ChangeFlags.Validate(o.In)
}

// Run uninstalls and prints the outcome.
func (o *Options) Run(parent context.Context) error {
	ctx, stop, c, err := cmdutil.Connect(parent, o.Context)
	if err != nil {
		return err
	}
	defer stop()
	out := o.ProgressOut(o.Context)
	a := &install.Uninstall{
		Uninstaller: install.Uninstaller{Client: c, Revision: o.Revision, Purge: o.Purge, DryRun: o.DryRun, Wait: o.Wait, Timeout: o.Timeout},
		Planned:     func(p *install.UninstallPlan) { describe(out, p, o.Purge) },
	}
	if o.Asking() {
		a.Confirm = func(q string) (bool, error) { return cmdutil.Confirm(o.In, out, q) }
	}
	res, err := a.Run(ctx)
	switch {
	case err != nil:
		return err
	case res.Plan.Empty():
		fmt.Fprintf(out, "Nothing to uninstall: no objects of revision %s found in %s.\n", res.Plan.Revision, c.Target)
		if o.Output.IsStructured() {
			return cli.PrintStructured(o.Out, o.Output.Format(), &install.UninstallResult{DryRun: o.DryRun})
		}
		return nil
	case res.Cancelled:
		fmt.Fprintln(out, "Cancelled: nothing was changed.")
		return nil
	}
	return o.Output.Write(o.Out, res.Result, func() error {
		colors := cli.NewColors(out, o.Color)
		verb := "Removed"
		if o.DryRun {
			verb = "Dry run: would remove"
		}
		fmt.Fprintf(out, "%s %s %d object(s) of revision %s.\n", colors.OK("✔"), verb, len(res.Result.Deleted), res.Plan.Revision)
		if len(res.Result.Unlabelled) > 0 {
			fmt.Fprintf(out, "  Kept %d CRD(s) and the user configuration in them; `mesh uninstall --purge` removes them.\n", len(res.Result.Unlabelled))
		}
		return nil
	})
}

// describe says what is about to go, user resources first when purging.
func describe(out io.Writer, p *install.UninstallPlan, purge bool) {
	fmt.Fprintf(out, "Revision %s: %d object(s) to remove", p.Revision, len(p.Objects))
	if len(p.Namespaces) > 0 {
		names := make([]string, 0, len(p.Namespaces))
		for _, n := range p.Namespaces {
			names = append(names, n.Name)
		}
		fmt.Fprintf(out, ", and namespace %s", strings.Join(names, ", "))
	}
	fmt.Fprintln(out, ".")
	if len(p.OtherRevisions) > 0 {
		fmt.Fprintf(out, "Revisions %s stay installed, with the CRDs and the namespace.\n", strings.Join(p.OtherRevisions, ", "))
	}
	if !purge {
		return
	}
	fmt.Fprintf(out, "--purge deletes %d CRD(s) and %d user resource(s)", len(p.CRDs), p.UserCount())
	if len(p.User) > 0 {
		parts := make([]string, 0, len(p.User))
		for _, u := range p.User {
			parts = append(parts, fmt.Sprintf("%d %s.%s", u.Count, u.Kind, u.Group))
		}
		fmt.Fprintf(out, ": %s", strings.Join(parts, ", "))
	}
	fmt.Fprintln(out, ".")
}
