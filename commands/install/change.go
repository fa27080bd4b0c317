package install

import (
	"context"
	"io"
	"time"

	"github.com/spf13/pflag"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/kube"
)

// Change holds the flags and steps install, upgrade and uninstall share as
// commands that change the cluster after asking.
type Change struct {
	Yes    bool
	DryRun bool
	Wait   bool
	Output string
}

// AddFlags binds -y, --dry-run, --wait and -o; the help of the last two depends on the command.
func (c *Change) AddFlags(fs *pflag.FlagSet, dryRunHelp, waitHelp string) {
	fs.BoolVarP(&c.Yes, "skip-confirmation", "y", false, "do not ask for confirmation")
	fs.BoolVar(&c.DryRun, "dry-run", false, dryRunHelp)
	fs.BoolVar(&c.Wait, "wait", true, waitHelp)
	fs.StringVarP(&c.Output, "output", "o", "", "print the result as json or yaml")
}

// Validate rejects an unknown output format and a confirmation that cannot
// be asked, before anything touches the cluster.
func (c *Change) Validate(in io.Reader) error {
	if err := cli.ValidateOutput(c.Output, cli.OutputJSON, cli.OutputYAML); err != nil {
		return err
	}
	if !c.Yes && !c.DryRun && !cli.IsTerminal(in) {
		return NeedYes()
	}
	return nil
}

// ProgressOut is where progress and questions go: standard error when
// standard output carries the -o result, so the result stays parseable.
func (c *Change) ProgressOut(ctx *cli.Context) io.Writer {
	if c.Output != "" {
		return ctx.ErrOut
	}
	return ctx.Out
}

// Apply adds the readiness wait install and upgrade have to Change.
type Apply struct {
	Change
	ReadinessTimeout time.Duration
}

// AddFlags binds the flags install and upgrade share.
func (a *Apply) AddFlags(fs *pflag.FlagSet) {
	a.Change.AddFlags(fs,
		"send every change as a server-side dry run: show what would change, change nothing",
		"wait for each component to be ready before the next")
	fs.DurationVar(&a.ReadinessTimeout, "readiness-timeout", 5*time.Minute, "how long to wait for a component to be ready")
}

// Validate checks the shared flags and that the readiness timeout is positive.
func (a *Apply) Validate(in io.Reader) error {
	if err := cli.ValidateOutput(a.Output, cli.OutputJSON, cli.OutputYAML); err != nil {
		return err
	}
	if a.ReadinessTimeout <= 0 {
		return cli.Usagef("--readiness-timeout must be positive, got %s", a.ReadinessTimeout)
	}
	return a.Change.Validate(in)
}

// Connect starts the interruptible context of a cluster change and checks
// the cluster answers before anything is asked or changed.
func Connect(parent context.Context, ctx *cli.Context) (context.Context, context.CancelFunc, *kube.Client, error) {
	sctx, stop := SignalContext(parent)
	c, err := kube.FromCLI(ctx)
	if err == nil {
		_, err = c.ServerVersion(sctx)
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return sctx, stop, c, nil
}
