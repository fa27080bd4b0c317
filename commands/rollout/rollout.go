// Package rollout holds `mesh rollout`: the staged releases of config
// changes mesh-pilot runs (docs/rollout.md), as each pilot replica reports
// them on its debug port.
package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// NewCommand returns `mesh rollout` and its subcommands.
func NewCommand(ctx *cli.Context) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Show, promote and abort the staged releases of config changes mesh-pilot runs",
		Long: `A config resource annotated rollout.mesh.io/stages is released in stages: its
change goes to a share of the proxies it affects, stage by stage, and is rolled
back for everyone when a proxy rejects it (docs/rollout.md).

Every running mesh-pilot replica is asked (through port-forwards to its pods
in --pilot-namespace, or at --pilot-address HOST:PORT, its debug port 15014);
each reports the rollouts it runs. promote and abort write their request on
the resource through the Kubernetes API, under your RBAC, and wait for every
replica to carry it out.`,
	}
	cmd.AddCommand(newStatusCommand(ctx), newHistoryCommand(ctx), newRequestCommand(ctx, Promote), newRequestCommand(ctx, Abort))
	return cmd
}

// StatusOptions holds the flags of `mesh rollout status`.
type StatusOptions struct {
	*cli.Context
	cmdutil.PilotFlags
	Output *cli.Output

	id        string // KIND/NAMESPACE/NAME, "" for all
	namespace string
	all       bool
}

// Row is one rollout as one replica reports it.
type Row struct {
	rollout.Status
	Pilot string `json:"pilot"`
}

func newStatusCommand(ctx *cli.Context) *cobra.Command {
	o := &StatusOptions{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:   "status [KIND/NAME]",
		Short: "Show each staged resource's phase, stage and the proxies on its candidate",
		Example: `  mesh rollout status -A
  mesh rollout status -n default VirtualService/reviews -o yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: cmdutil.Run(o),
	}
	o.PilotFlags.AddFlags(cmd)
	cmd.Flags().BoolVarP(&o.all, "all-namespaces", "A", false, "rollouts in every namespace")
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete resolves the namespace and the resource argument.
func (o *StatusOptions) Complete(_ *cobra.Command, args []string) error {
	ns, _, err := o.Namespace()
	if err != nil {
		return err
	}
	o.namespace = ns
	if len(args) == 1 {
		if o.id, err = rollout.ParseID(args[0], ns); err != nil {
			return cli.Usage(err)
		}
	}
	return nil
}

// Validate rejects conflicting arguments.
func (o *StatusOptions) Validate() error {
	if o.id != "" && o.all {
		return cli.Usagef("give a resource or --all-namespaces, not both")
	}
	return nil
}

// Run prints the rollouts.
func (o *StatusOptions) Run(ctx context.Context) error {
	return o.WithPilots(ctx, o.Context, func(rs []cmdutil.Pilot) error {
		var rows []Row
		for _, r := range rs {
			sts, err := r.Client.Rollouts(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", r.Name, err)
			}
			for _, s := range sts {
				if o.id != "" && s.ID != o.id || o.id == "" && !o.all && s.Namespace != o.namespace {
					continue
				}
				rows = append(rows, Row{Status: s, Pilot: r.Name})
			}
		}
		if o.id != "" && len(rows) == 0 {
			return fmt.Errorf("%s has no rollout (no %s annotation, or no change since pilot started)", o.id, rollout.AnnotationStages)
		}
		if o.Output.IsStructured() {
			return cli.PrintStructured(o.Out, o.Output.Format(), rows)
		}
		return printStatus(o, rows)
	})
}

func printStatus(o *StatusOptions, rows []Row) error {
	c := o.Colors()
	tw := cli.NewTable(o.Out)
	fmt.Fprintln(tw, "RESOURCE\tPHASE\tSTAGE\tCANDIDATE\tHEALTH\tNEXT STEP\tREASON\tPILOT")
	for _, r := range rows {
		stage, cand, next := "-", "-", "-"
		if r.Stage > 0 && r.Stage <= len(r.Stages) {
			stage = fmt.Sprintf("%d/%d (%d%%)", r.Stage, len(r.Stages), r.Stages[r.Stage-1])
			cand = fmt.Sprintf("%d of %d", len(r.Staged), r.Affected)
		}
		if r.NextStep != nil {
			next = r.NextStep.UTC().Format(time.RFC3339)
		}
		phase := string(r.Phase)
		switch r.Phase {
		case rollout.Released:
			phase = c.OK(phase)
		case rollout.RolledBack, rollout.Held:
			phase = c.Bad(phase)
		case rollout.Progressing:
			phase = c.Warn(phase)
		}
		reason := r.Reason
		if reason == "" {
			reason = "-"
		}
		health := "-"
		if h := r.Health; h != nil {
			health = fmt.Sprintf("%.0f req, %.1f%% failed", h.Candidate.Requests, 100*h.Candidate.FailedRatio)
			if h.Candidate.P90 > 0 {
				health += fmt.Sprintf(", p90 %.0fms", h.Candidate.P90)
			}
			if h.Released.P90 > 0 {
				health += fmt.Sprintf(" (released %.0fms)", h.Released.P90)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, phase, stage, cand, health, next, reason, r.Pilot)
	}
	return tw.Flush()
}

// HistoryOptions holds the flags of `mesh rollout history`.
type HistoryOptions struct {
	*cli.Context
	cmdutil.PilotFlags
	Output *cli.Output

	id string
}

// HistoryRow is one step as one replica recorded it.
type HistoryRow struct {
	rollout.Event
	Pilot string `json:"pilot"`
}

func newHistoryCommand(ctx *cli.Context) *cobra.Command {
	o := &HistoryOptions{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:     "history KIND/NAME",
		Short:   "Show the steps of a resource's rollouts: started, stages, promoted, rolled back",
		Example: `  mesh rollout history -n default VirtualService/reviews`,
		Args:    cobra.ExactArgs(1),
		RunE:    cmdutil.Run(o),
	}
	o.PilotFlags.AddFlags(cmd)
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete resolves the resource argument.
func (o *HistoryOptions) Complete(_ *cobra.Command, args []string) error {
	ns, _, err := o.Namespace()
	if err != nil {
		return err
	}
	if o.id, err = rollout.ParseID(args[0], ns); err != nil {
		return cli.Usage(err)
	}
	return nil
}

// Validate has nothing to check beyond Complete.
func (o *HistoryOptions) Validate() error { return nil }

// Run prints the steps.
func (o *HistoryOptions) Run(ctx context.Context) error {
	return o.WithPilots(ctx, o.Context, func(rs []cmdutil.Pilot) error {
		var rows []HistoryRow
		var errs []string
		for _, r := range rs {
			evs, err := r.Client.RolloutHistory(ctx, o.id)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", r.Name, err))
				continue
			}
			for _, e := range evs {
				rows = append(rows, HistoryRow{Event: e, Pilot: r.Name})
			}
		}
		if len(rows) == 0 && len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		if o.Output.IsStructured() {
			return cli.PrintStructured(o.Out, o.Output.Format(), rows)
		}
		tw := cli.NewTable(o.Out)
		fmt.Fprintln(tw, "TIME\tREVISION\tSTEP\tSTAGE\tMESSAGE\tPILOT")
		for _, r := range rows {
			stage := "-"
			if r.Stage > 0 {
				stage = fmt.Sprintf("%d (%d%%)", r.Stage, r.Percent)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), r.Revision, r.Reason, stage, r.Message, r.Pilot)
		}
		return tw.Flush()
	})
}
