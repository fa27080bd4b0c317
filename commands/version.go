package commands

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/version"
)

// VersionOptions holds the flags of `mesh version`.
type VersionOptions struct {
	*cli.Context
	Short  bool
	Output *cli.Output
}

func newVersionCommand(ctx *cli.Context) *cobra.Command {
	o := &VersionOptions{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of the mesh command-line tool",
		Args:  cobra.NoArgs,
		RunE:  cmdutil.Run(o),
	}
	cmd.Flags().BoolVar(&o.Short, "short", false, "print only the version number")
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete has nothing to derive.
func (o *VersionOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate has nothing to check beyond what the flags checked when parsed.
func (o *VersionOptions) Validate() error { return nil }

// Run prints the version.
func (o *VersionOptions) Run(context.Context) error {
	info := version.Get()
	return o.Output.Write(o.Out, map[string]any{"clientVersion": info}, func() error { return o.print(info) })
}

func (o *VersionOptions) print(info version.Info) error {
	if o.Short {
		_, err := fmt.Fprintln(o.Out, info.Version)
		return err
	}
	_, err := fmt.Fprintf(o.Out, "mesh version %s (commit %s, built %s, %s, %s)\n",
		info.Version, info.GitCommit, info.BuildDate, info.GoVersion, info.Platform)
	return err
}
