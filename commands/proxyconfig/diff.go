package proxyconfig

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/configdump"
	"mesh.dev/mesh/internal/proxyconfig"
)

// outputUnified selects the unified text diff.
const outputUnified = "unified"

// DiffOptions holds the flags of `mesh proxy-config diff`.
type DiffOptions struct {
	*cli.Context
	Output    *cli.Output
	AdminPort int
	a, b      source
}

func newDiffCommand(ctx *cli.Context) *cobra.Command {
	o := &DiffOptions{Context: ctx, Output: cli.NewOutput(cli.OutputTable, outputUnified, cli.OutputJSON, cli.OutputYAML)}
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare the configuration of two proxies or dumps",
		Long: `Compare two proxy configurations resource by resource and show what was
added, removed and changed, with the changed fields' paths and values.
Fields that differ between any two dumps (last_updated, version_info, nonces)
are ignored. Exits 0 when the two are the same and 1 when they differ.

A and B are each one of:
  admin://HOST:PORT     a proxy's admin API
  file://PATH, PATH, -  a saved /config_dump (a path that exists, or - for standard input)
  POD[.NAMESPACE]       a pod, through a port-forward (pod://POD[.NAMESPACE] to be explicit)`,
		Example: `  mesh proxy-config diff before.json after.json
  mesh proxy-config diff reviews-v1-5c7b9f6d8-abcde.default reviews-v2-7d9c4b8f6-fghij.default
  mesh proxy-config diff admin://127.0.0.1:15000 saved.json --output unified`,
		Args: cobra.ExactArgs(2),
		RunE: cmdutil.Run(o),
	}
	cmdutil.AddOutputFlag(cmd, o.Output, "unified is a unified text diff")
	bindAdminPort(cmd.Flags(), &o.AdminPort)
	return cmd
}

// Complete resolves both sides.
func (o *DiffOptions) Complete(_ *cobra.Command, args []string) error {
	var err error
	if o.a, err = parseDiffSource(o.Context, args[0]); err != nil {
		return err
	}
	if o.b, err = parseDiffSource(o.Context, args[1]); err != nil {
		return err
	}
	o.a.AdminPort, o.b.AdminPort = o.AdminPort, o.AdminPort
	return nil
}

// Validate rejects reading standard input twice.
func (o *DiffOptions) Validate() error {
	if o.a.File == "-" && o.b.File == "-" {
		return cli.Usagef("only one side of the diff can be read from standard input")
	}
	return nil
}

// Run loads both sides, prints their difference and exits 1 when they differ.
func (o *DiffOptions) Run(ctx context.Context) error {
	want := fetchWant{EDS: true}
	a, err := load(ctx, o.Context, o.a, want, configdump.Options{})
	if err != nil {
		return err
	}
	b, err := load(ctx, o.Context, o.b, want, configdump.Options{})
	if err != nil {
		return err
	}
	differ := false
	switch o.Output.Format() {
	case outputUnified:
		text, err := proxyconfig.Unified(a, b, o.a.Label, o.b.Label)
		if err != nil {
			return err
		}
		differ = text != ""
		if _, err := io.WriteString(o.Out, text); err != nil {
			return err
		}
	default:
		d, err := proxyconfig.Compare(a, b)
		if err != nil {
			return err
		}
		differ = !d.Empty()
		if err := o.Output.Write(o.Out, d, func() error { return proxyconfig.PrintDiff(o.Out, o.Colors(), d, o.a.Label, o.b.Label) }); err != nil {
			return err
		}
	}
	if differ {
		return &cli.SilentError{Code: 1}
	}
	return nil
}
