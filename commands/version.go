package commands

import (
	"fmt"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/version"
)

// VersionOptions holds the flags of `mesh version`.
type VersionOptions struct {
	*cli.Context
	Short  bool
	Output string
}

func newVersionCommand(ctx *cli.Context) *cobra.Command {
	o := &VersionOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of the mesh command-line tool",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().BoolVar(&o.Short, "short", false, "print only the version number")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// Validate rejects unknown output formats.
func (o *VersionOptions) Validate() error {
	return cli.ValidateOutput(o.Output, cli.OutputJSON, cli.OutputYAML)
}

// Run prints the version.
func (o *VersionOptions) Run() error {
	info := version.Get()
	if o.Output != "" {
		return cli.PrintStructured(o.Out, o.Output, map[string]any{"clientVersion": info})
	}
	if o.Short {
		_, err := fmt.Fprintln(o.Out, info.Version)
		return err
	}
	_, err := fmt.Fprintf(o.Out, "mesh version %s (commit %s, built %s, %s, %s)\n",
		info.Version, info.GitCommit, info.BuildDate, info.GoVersion, info.Platform)
	return err
}
