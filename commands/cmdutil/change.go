package cmdutil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/kube"
)

// ChangeFlags are the flags of commands that change the cluster after
// asking (install, upgrade, uninstall): -y, --dry-run, --wait and -o.
type ChangeFlags struct {
	Yes    bool
	DryRun bool
	Wait   bool
	Output *cli.Output
}

// AddFlags binds the flags; the help of --dry-run and --wait depends on the command.
func (c *ChangeFlags) AddFlags(cmd *cobra.Command, dryRunHelp, waitHelp string) {
	c.Output = cli.Structured()
	fs := cmd.Flags()
	fs.BoolVarP(&c.Yes, "skip-confirmation", "y", false, "do not ask for confirmation")
	fs.BoolVar(&c.DryRun, "dry-run", false, dryRunHelp)
	fs.BoolVar(&c.Wait, "wait", true, waitHelp)
	AddOutputFlag(cmd, c.Output, "prints the result, with progress on standard error")
}

// Validate rejects a confirmation that cannot be asked, before anything touches the cluster.
func (c *ChangeFlags) Validate(in io.Reader) error {
	if !c.Yes && !c.DryRun && !cli.IsTerminal(in) {
		return NeedYes()
	}
	return nil
}

// Asking reports whether the command asks before changing anything.
func (c *ChangeFlags) Asking() bool { return !c.Yes && !c.DryRun }

// ProgressOut is where progress and questions go: standard error when
// standard output carries the -o result, so the result stays parseable.
func (c *ChangeFlags) ProgressOut(streams *cli.Context) io.Writer {
	if c.Output.IsStructured() {
		return streams.ErrOut
	}
	return streams.Out
}

// ApplyFlags add the readiness wait install and upgrade have to ChangeFlags.
type ApplyFlags struct {
	ChangeFlags
	ReadinessTimeout time.Duration
}

// AddFlags binds the flags install and upgrade share.
func (a *ApplyFlags) AddFlags(cmd *cobra.Command) {
	a.ChangeFlags.AddFlags(cmd,
		"send every change as a server-side dry run: show what would change, change nothing",
		"wait for each component to be ready before the next")
	cmd.Flags().DurationVar(&a.ReadinessTimeout, "readiness-timeout", 5*time.Minute, "how long to wait for a component to be ready")
}

// Validate checks the shared flags and that the readiness timeout is positive.
func (a *ApplyFlags) Validate(in io.Reader) error {
	if a.ReadinessTimeout <= 0 {
		return cli.Usagef("--readiness-timeout must be positive, got %s", a.ReadinessTimeout)
	}
	return a.ChangeFlags.Validate(in)
}

// Confirm asks a yes/no question on a terminal. Without a terminal on in it
// never waits for input: it returns a usage error telling the caller to pass -y.
func Confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	if !cli.IsTerminal(in) {
		return false, NeedYes()
	}
	fmt.Fprintf(out, "%s [y/N] ", question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// NeedYes is the usage error for a confirmation that cannot be asked.
func NeedYes() error {
	return cli.Usagef("standard input is not a terminal, so mesh cannot ask for confirmation: pass -y to go ahead without asking")
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

// SignalContext is cancelled by Ctrl-C or SIGTERM, so an interrupted command
// gets to clean up (the installer takes back its webhooks).
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// PrintWarnings writes one "Warning:" line per warning to standard error.
func PrintWarnings(ctx *cli.Context, warnings []string) {
	colors := ctx.ErrColors()
	for _, w := range warnings {
		fmt.Fprintf(ctx.ErrOut, "%s %s\n", colors.Warn("Warning:"), w)
	}
}
