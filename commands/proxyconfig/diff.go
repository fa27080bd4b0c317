package proxyconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/configdump"
	"mesh.dev/mesh/internal/proxyconfig"
)

// outputUnified selects the unified text diff.
const outputUnified = "unified"

// DiffOptions holds the flags of `mesh proxy-config diff`.
type DiffOptions struct {
	*cli.Context
	Output    string
	AdminPort int
	a, b      source
}

func newDiffCommand(ctx *cli.Context) *cobra.Command {
	o := &DiffOptions{Context: ctx}
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
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: unified (a unified text diff), json or yaml")
	bindAdminPort(cmd.Flags(), &o.AdminPort)
	return cmd
}

// Complete resolves both sides.
func (o *DiffOptions) Complete(args []string) error {
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

// Validate rejects unknown output formats and reading standard input twice.
func (o *DiffOptions) Validate() error {
	if o.a.File == "-" && o.b.File == "-" {
		return cli.Usagef("only one side of the diff can be read from standard input")
	}
	return cli.ValidateOutput(o.Output, outputUnified, cli.OutputJSON, cli.OutputYAML)
}

// Run loads both sides, prints their difference and exits 1 when they differ.
func (o *DiffOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
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
	switch o.Output {
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
		if o.Output != "" {
			if err := cli.PrintStructured(o.Out, o.Output, d); err != nil {
				return err
			}
		} else if err := PrintDiff(o.Out, o.Colors(), d, o.a.Label, o.b.Label); err != nil {
			return err
		}
	}
	if differ {
		return &cli.SilentError{Code: 1}
	}
	return nil
}

// PrintDiff writes d for a person: one line per added, removed or changed
// resource, and for a change its fields' paths with old → new values.
func PrintDiff(w io.Writer, c *cli.Colors, d proxyconfig.Diff, la, lb string) error {
	if d.Empty() {
		_, err := fmt.Fprintf(w, "%s and %s have the same configuration (ignoring last_updated, version_info and nonces).\n", la, lb)
		return err
	}
	fmt.Fprintf(w, "--- %s\n+++ %s\n", la, lb)
	for _, r := range d.Resources {
		switch r.Change {
		case proxyconfig.Added:
			fmt.Fprintf(w, "%s %s %s\n", c.OK("+ added  "), r.Kind, r.Name)
		case proxyconfig.Removed:
			fmt.Fprintf(w, "%s %s %s\n", c.Bad("- removed"), r.Kind, r.Name)
		default:
			fmt.Fprintf(w, "%s %s %s\n", c.Warn("~ changed"), r.Kind, r.Name)
			for _, f := range r.Fields {
				fmt.Fprintf(w, "    %s: %s → %s\n", f.Path, value(f.Old), value(f.New))
			}
		}
	}
	return nil
}

// value prints a field's JSON value on one line, or (absent) when one side lacks it.
func value(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
