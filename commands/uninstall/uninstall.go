// Package uninstall holds `mesh uninstall`.
package uninstall

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	installcmd "mesh.dev/mesh/commands/install"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// Options are the flags of `mesh uninstall`.
type Options struct {
	*cli.Context
	installcmd.Change
	Revision string
	Purge    bool
	Timeout  time.Duration

	client *kube.Client
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
	cmd.Flags().StringVar(&o.Revision, "revision", "", "the control plane revision to remove (default: the default revision)")
	cmd.Flags().BoolVar(&o.Purge, "purge", false, "also delete all user configuration of the mesh's CRDs, and the CRDs")
	o.Change.AddFlags(cmd.Flags(), "show what would be deleted, delete nothing",
		"wait until the namespace (and with --purge the CRDs) are gone")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long to wait for deletions")
	return cmd
}

// Complete has nothing to derive before the cluster is asked.
func (o *Options) Complete() error {
	return nil
}

// Validate checks flags before anything touches the cluster.
func (o *Options) Validate() error { return o.Change.Validate(o.In) }

// Run plans the uninstall, asks, and deletes.
func (o *Options) Run(parent context.Context) error {
	ctx, stop, c, err := installcmd.Connect(parent, o.Context)
	if err != nil {
		return err
	}
	defer stop()
	o.client = c
	out := o.ProgressOut(o.Context)
	u := &install.Uninstaller{Client: o.client, Revision: o.Revision, Purge: o.Purge, DryRun: o.DryRun, Wait: o.Wait, Timeout: o.Timeout}
	plan, err := u.Plan(ctx)
	if err != nil {
		return err
	}
	if plan.Empty() {
		fmt.Fprintf(out, "Nothing to uninstall: no objects of revision %s found in %s.\n", plan.Revision, o.client.Target)
		if o.Output != "" {
			return cli.PrintStructured(o.Out, o.Output, &install.UninstallResult{DryRun: o.DryRun})
		}
		return nil
	}
	describe(out, plan, o.Purge)
	if !o.Yes && !o.DryRun {
		q := fmt.Sprintf("Remove mesh revision %s from %s?", plan.Revision, o.client.Target)
		if o.Purge && plan.UserCount() > 0 {
			q = fmt.Sprintf("Remove mesh revision %s from %s and DELETE %d user resource(s)?", plan.Revision, o.client.Target, plan.UserCount())
		}
		ok, err := installcmd.Confirm(o.In, out, q)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(out, "Cancelled: nothing was changed.")
			return nil
		}
	}
	res, err := u.Run(ctx, plan)
	if err != nil {
		return err
	}
	if o.Output != "" {
		return cli.PrintStructured(o.Out, o.Output, res)
	}
	colors := cli.NewColors(out, o.Color)
	verb := "Removed"
	if o.DryRun {
		verb = "Dry run: would remove"
	}
	fmt.Fprintf(out, "%s %s %d object(s) of revision %s.\n", colors.OK("✔"), verb, len(res.Deleted), plan.Revision)
	if len(res.Unlabelled) > 0 {
		fmt.Fprintf(out, "  Kept %d CRD(s) and the user configuration in them; `mesh uninstall --purge` removes them.\n", len(res.Unlabelled))
	}
	return nil
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
