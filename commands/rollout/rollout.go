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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/syncstatus"
)

// NewCommand returns `mesh rollout` and its subcommands.
func NewCommand(ctx *cli.Context) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Show the staged releases of config changes mesh-pilot runs",
		Long: `A config resource annotated rollout.mesh.io/stages is released in stages: its
change goes to a share of the proxies it affects, stage by stage, and is rolled
back for everyone when a proxy rejects it (docs/rollout.md).

Every running mesh-pilot replica is asked (through port-forwards to its pods
in --pilot-namespace, or at --pilot-address HOST:PORT, its debug port 15014);
each reports the rollouts it runs.`,
	}
	cmd.AddCommand(newStatusCommand(ctx), newHistoryCommand(ctx))
	return cmd
}

// pilotFlags are how the subcommands reach pilot.
type pilotFlags struct {
	PilotAddress   string
	PilotNamespace string
	Revision       string
}

func (p *pilotFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&p.PilotAddress, "pilot-address", "", "mesh-pilot's debug server at host:port instead of a port-forward to its pods")
	fs.StringVar(&p.PilotNamespace, "pilot-namespace", "mesh-system", "namespace of the mesh-pilot pods")
	fs.Var(cli.NewRevision(&p.Revision, true), "revision", "the control plane revision to ask (default: the default revision)")
}

// replica is one mesh-pilot replica's debug server.
type replica struct {
	name   string
	client *syncstatus.Client
}

// withPilots runs fn against every running replica of the revision, or
// --pilot-address alone.
func (p *pilotFlags) withPilots(ctx context.Context, c *cli.Context, fn func([]replica) error) error {
	if p.PilotAddress != "" {
		cl, err := syncstatus.New(p.PilotAddress)
		if err != nil {
			return cli.Usage(err)
		}
		return fn([]replica{{name: p.PilotAddress, client: cl}})
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	kube, err := c.KubeClient()
	if err != nil {
		return err
	}
	rev := p.Revision
	if rev == "" {
		rev = "default"
	}
	sel := "app=mesh-pilot,mesh.io/rev=" + rev
	pods, err := kube.CoreV1().Pods(p.PilotNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("find mesh-pilot in %s: %w", p.PilotNamespace, err)
	}
	var out []replica
	for _, pod := range pods.Items {
		if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			continue
		}
		fw, err := adminclient.PortForward(ctx, cfg, p.PilotNamespace, pod.Name, syncstatus.DebugPort, c.ErrOut)
		if err != nil {
			return err
		}
		defer fw.Close()
		cl, err := syncstatus.New(fw.LocalAddress)
		if err != nil {
			return err
		}
		out = append(out, replica{name: pod.Name, client: cl})
	}
	if len(out) == 0 {
		return fmt.Errorf("no running mesh-pilot pod (%s) in namespace %s: is the mesh installed? (or give --pilot-address)", sel, p.PilotNamespace)
	}
	return fn(out)
}

// StatusOptions holds the flags of `mesh rollout status`.
type StatusOptions struct {
	*cli.Context
	pilotFlags
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
	o.pilotFlags.add(cmd)
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
	return o.withPilots(ctx, o.Context, func(rs []replica) error {
		var rows []Row
		for _, r := range rs {
			sts, err := r.client.Rollouts(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			for _, s := range sts {
				if o.id != "" && s.ID != o.id || o.id == "" && !o.all && s.Namespace != o.namespace {
					continue
				}
				rows = append(rows, Row{Status: s, Pilot: r.name})
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
	fmt.Fprintln(tw, "RESOURCE\tPHASE\tSTAGE\tCANDIDATE\tNEXT STEP\tREASON\tPILOT")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, phase, stage, cand, next, reason, r.Pilot)
	}
	return tw.Flush()
}

// HistoryOptions holds the flags of `mesh rollout history`.
type HistoryOptions struct {
	*cli.Context
	pilotFlags
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
	o.pilotFlags.add(cmd)
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
	return o.withPilots(ctx, o.Context, func(rs []replica) error {
		var rows []HistoryRow
		var errs []string
		for _, r := range rs {
			evs, err := r.client.RolloutHistory(ctx, o.id)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", r.name, err))
				continue
			}
			for _, e := range evs {
				rows = append(rows, HistoryRow{Event: e, Pilot: r.name})
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
