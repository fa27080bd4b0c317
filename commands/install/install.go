// Package install holds `mesh install` and the pieces upgrade, precheck and
// verify-install share with it: the rendering flags, confirmation and the
// progress view.
package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// Options are the flags of `mesh install`.
type Options struct {
	*cli.Context
	Source
	Apply

	client *kube.Client
}

// NewCommand builds `mesh install`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the mesh into the cluster",
		Long: `Install renders the mesh for a profile (with -f overlays and --set
overrides) and applies it to the cluster with server-side apply, component by
component (base, pilot, gateways), waiting for each to be ready. Running it
again changes nothing; objects a new rendering no longer has are pruned.`,
		Example: `  mesh install --set profile=demo -y
  mesh install --revision canary -y
  mesh install -f my-mesh.yaml --dry-run`,
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
	return cmd
}

// Complete renders the mesh.
func (o *Options) Complete() error {
	if err := o.Source.Load(); err != nil {
		return err
	}
	return nil
}

// Validate checks flags before anything touches the cluster.
func (o *Options) Validate() error { return o.Apply.Validate(o.In) }

// Run installs.
func (o *Options) Run(parent context.Context) error {
	for _, w := range o.Warnings {
		fmt.Fprintf(o.ErrOut, "%s %s\n", o.ErrColors().Warn("warning:"), w)
	}
	ctx, stop, c, err := Connect(parent, o.Context)
	if err != nil {
		return err
	}
	defer stop()
	o.client = c
	progressOut := o.ProgressOut(o.Context)
	ns, err := o.Manifest.Namespace()
	if err != nil {
		return err
	}
	if err := install.CheckNamespace(ctx, o.client, ns); err != nil {
		return err
	}
	if !o.Yes && !o.DryRun {
		q := fmt.Sprintf("Install mesh %s (profile %s, revision %s: %s) into %s?",
			o.State.Version, o.Operator.Spec.Profile, o.Manifest.Revision, componentList(o.Manifest), o.client.Target)
		ok, err := Confirm(o.In, progressOut, q)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(progressOut, "Cancelled: nothing was changed.")
			return nil
		}
	}
	res, err := RunInstaller(ctx, o.Context, progressOut, &install.Installer{
		Client:           o.client,
		Wait:             o.Wait,
		ReadinessTimeout: o.ReadinessTimeout,
		DryRun:           o.DryRun,
	}, o.Manifest, o.State)
	if err != nil {
		return err
	}
	return PrintResult(o.Context, progressOut, o.Output, res)
}

// RunInstaller runs an installer with the progress view and turns a
// readiness failure into one line per object that is not ready.
func RunInstaller(ctx context.Context, c *cli.Context, out io.Writer, in *install.Installer, m install.Manifest, st install.State) (*install.Result, error) {
	p := NewProgress(out, cli.NewColors(out, c.Color), cli.IsTerminal(out))
	in.Progress = p.Handle
	res, err := in.Run(ctx, m, st)
	p.Close()
	if err == nil {
		return res, nil
	}
	var nre *kube.NotReadyError
	if errors.As(err, &nre) {
		colors := cli.NewColors(out, c.Color)
		for _, it := range nre.Items {
			fmt.Fprintf(out, "  %s %s: %s\n", colors.Bad("✘"), it.Ref, it.Reason)
		}
		return res, fmt.Errorf("%d object(s) not ready after %s (listed above); nothing was rolled back, fix the cause and run the command again", len(nre.Items), nre.Timeout)
	}
	if errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("interrupted: the install stopped part-way; webhooks it added were removed; run it again to finish, or `mesh uninstall` to remove it")
	}
	return res, err
}

// PrintResult prints the install's result as a closing line, or as json/yaml.
func PrintResult(c *cli.Context, out io.Writer, format string, res *install.Result) error {
	if format != "" {
		return cli.PrintStructured(c.Out, format, res)
	}
	colors := cli.NewColors(out, c.Color)
	prefix := ""
	if res.DryRun {
		prefix = "Dry run: "
	}
	if !res.Changed() {
		fmt.Fprintf(out, "%s %sNothing to change: all %d objects are already as rendered.\n", colors.OK("✔"), prefix, res.Count())
		return nil
	}
	counts := map[kube.Action]int{}
	for _, c := range res.Components {
		for a, n := range c.Counts() {
			counts[a] += n
		}
	}
	var parts []string
	for _, a := range []kube.Action{kube.Created, kube.Configured, kube.Unchanged} {
		if counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
		}
	}
	if len(res.Pruned) > 0 {
		parts = append(parts, fmt.Sprintf("%d pruned", len(res.Pruned)))
	}
	verb := "Installation complete"
	if res.DryRun {
		verb = "would apply"
	}
	fmt.Fprintf(out, "%s %s%s: %s.\n", colors.OK("✔"), prefix, verb, strings.Join(parts, ", "))
	return nil
}

func componentList(m install.Manifest) string {
	names := make([]string, 0, len(m.Components))
	for _, c := range m.Components {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// SignalContext is cancelled by Ctrl-C or SIGTERM, so an interrupted command
// gets to clean up (the installer takes back its webhooks).
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
