// Package verifyinstall holds `mesh verify-install`.
package verifyinstall

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	installcmd "mesh.dev/mesh/commands/install"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// Options are the flags of `mesh verify-install`.
type Options struct {
	*cli.Context
	installcmd.Source
	Output string

	client *kube.Client
}

// NewCommand builds `mesh verify-install`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx}
	cmd := &cobra.Command{
		Use:   "verify-install",
		Short: "Check that the cluster holds the mesh as rendered",
		Long: `verify-install renders the installed spec (or the one -f/--set give)
and compares it with the cluster: it lists objects that are missing, fields
that drifted from what mesh set (fields the server defaults are not compared),
objects an install would prune, and workloads that are not ready. It exits 1
when anything is off.`,
		Example: `  mesh verify-install
  mesh verify-install --revision canary -o json`,
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
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "print the result as json or yaml")
	return cmd
}

// Complete builds the cluster client; the rendering needs the cluster's record, so it happens in Run.
func (o *Options) Complete() error {
	c, err := kube.FromCLI(o.Context)
	if err != nil {
		return err
	}
	o.client = c
	return nil
}

// Validate checks the output format.
func (o *Options) Validate() error {
	return cli.ValidateOutput(o.Output, cli.OutputJSON, cli.OutputYAML)
}

// Run compares and prints.
func (o *Options) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, err := o.client.ServerVersion(ctx); err != nil {
		return err
	}
	if err := LoadInstalled(ctx, o.client, &o.Source); err != nil {
		return err
	}
	res, err := (&install.Verifier{Client: o.client}).Run(ctx, o.Manifest)
	if err != nil {
		return err
	}
	if o.Output != "" {
		if err := cli.PrintStructured(o.Out, o.Output, res); err != nil {
			return err
		}
	} else {
		PrintResult(o.Out, cli.NewColors(o.Out, o.Color), res)
	}
	if !res.Clean() {
		return &cli.SilentError{Code: cli.ExitError}
	}
	return nil
}

// LoadInstalled renders what -f/--set say or, without them, what the
// cluster's installed-state record says.
func LoadInstalled(ctx context.Context, c *kube.Client, s *installcmd.Source) error {
	if s.Given() {
		return s.Load()
	}
	recs, err := install.Records(ctx, c)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Revision == install.RevisionLabel(s.Revision) {
			return s.LoadRecord(&r)
		}
	}
	return &install.NotInstalledError{Revision: install.RevisionLabel(s.Revision), Installed: install.Revisions(recs)}
}

// PrintResult writes the findings, or one ✔ line when there are none.
func PrintResult(w io.Writer, colors *cli.Colors, r *install.VerifyResult) {
	if r.Clean() {
		fmt.Fprintf(w, "%s All %d objects of revision %s are installed as rendered and ready.\n", colors.OK("✔"), r.Checked, r.Revision)
		return
	}
	for _, m := range r.Missing {
		fmt.Fprintf(w, "%s missing: %s\n", colors.Bad("✘"), m)
	}
	for _, d := range r.Drifted {
		fmt.Fprintf(w, "%s drifted: %s\n", colors.Bad("✘"), d.Ref)
		for _, f := range d.Fields {
			fmt.Fprintf(w, "    %s: want %s, got %s\n", f.Path, show(f.Want), show(f.Got))
		}
	}
	for _, n := range r.NotReady {
		fmt.Fprintf(w, "%s not ready: %s: %s\n", colors.Bad("✘"), n.Ref, n.Reason)
	}
	for _, e := range r.Extra {
		fmt.Fprintf(w, "%s not in the rendering (an install would prune it): %s\n", colors.Warn("!"), e)
	}
	fmt.Fprintf(w, "%d of %d objects missing, %d drifted, %d not ready, %d extra.\n",
		len(r.Missing), r.Checked, len(r.Drifted), len(r.NotReady), len(r.Extra))
}

func show(v any) string {
	if v == nil {
		return "(unset)"
	}
	s := fmt.Sprintf("%v", v)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
