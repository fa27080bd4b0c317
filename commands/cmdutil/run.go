// Package cmdutil holds what mesh's commands share, so none imports another
// for behaviour: the run helper (Complete → Validate → Run), the rendering
// flags (--set, -f, --revision), the -o flag with its completion, and the
// flags, confirmation and connection of commands that change the cluster.
// Like kubectl's cmdutil and helm's cmd/helm/flags.go.
package cmdutil

import (
	"context"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
)

// Options is a command's flags and what it derives from them. Complete
// fills in what the flags leave out (defaults, resolved files, rendered
// specs), Validate rejects bad combinations before anything touches the
// cluster, and Run does the work.
type Options interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// Run is the RunE of every mesh command: Complete, then Validate, then Run.
func Run(o Options) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		return o.Run(ctx)
	}
}

// MarkUsage makes flag and argument-count mistakes anywhere under cmd usage
// errors (exit 64); the root command calls it once for the whole tree.
func MarkUsage(cmd *cobra.Command) {
	if cmd.Args != nil {
		check := cmd.Args
		cmd.Args = func(c *cobra.Command, args []string) error { return cli.Usage(check(c, args)) }
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.Usage(err) })
	for _, sub := range cmd.Commands() {
		MarkUsage(sub)
	}
}
