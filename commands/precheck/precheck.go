// Package precheck holds `mesh precheck`.
package precheck

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	installcmd "mesh.dev/mesh/commands/install"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/precheck"
)

// Options are the flags of `mesh precheck`.
type Options struct {
	*cli.Context
	installcmd.Source
	Output string

	client *kube.Client
}

// NewCommand builds `mesh precheck`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx}
	cmd := &cobra.Command{
		Use:   "precheck",
		Short: "Check whether the cluster can take a mesh install",
		Long: `Precheck checks the cluster before an install: the Kubernetes version,
the caller's permissions for everything the install applies, other control
planes, CRD and webhook conflicts, and the target namespace. It exits 0 when
the mesh can be installed and 1 when it cannot.`,
		Example: `  mesh precheck
  mesh precheck --set profile=demo -o json`,
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
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "print the checks as json or yaml")
	return cmd
}

// Complete renders the mesh to check for and builds the cluster client.
func (o *Options) Complete() error {
	if err := o.Source.Load(); err != nil {
		return err
	}
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

// Run runs the checks and exits 1 when the mesh cannot be installed.
func (o *Options) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	chk := &precheck.Checker{Client: o.client, Manifest: o.Manifest, Mode: precheck.ForInstall}
	rep, err := chk.Run(ctx)
	if err != nil {
		return err
	}
	if o.Output != "" {
		if err := cli.PrintStructured(o.Out, o.Output, rep); err != nil {
			return err
		}
	} else {
		PrintReport(o.Out, cli.NewColors(o.Out, o.Color), rep)
	}
	if !rep.Installable {
		return &cli.SilentError{Code: cli.ExitError}
	}
	return nil
}

// PrintReport writes one ✔/✘ line per check, with details and the remedy under a failure.
func PrintReport(w io.Writer, colors *cli.Colors, rep *precheck.Report) {
	for _, c := range rep.Checks {
		mark := colors.OK("✔")
		switch {
		case !c.Passed && c.Warning:
			mark = colors.Warn("!")
		case !c.Passed:
			mark = colors.Bad("✘")
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, c.Name, c.Message)
		if c.Passed {
			continue
		}
		for _, d := range c.Details {
			fmt.Fprintf(w, "    - %s\n", d)
		}
		if c.Remedy != "" {
			fmt.Fprintf(w, "    %s %s\n", colors.Bold("fix:"), c.Remedy)
		}
	}
	if rep.Installable {
		fmt.Fprintf(w, "%s\n", colors.OK("The mesh can be installed."))
	} else {
		fmt.Fprintf(w, "%s\n", colors.Bad("The mesh cannot be installed until the failed checks are fixed."))
	}
}
