// Package profile holds `mesh profile list|dump|diff`.
package profile

import (
	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
)

// NewCommand returns `mesh profile` and its subcommands.
func NewCommand(ctx *cli.Context) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "List, show and compare the built-in installation profiles",
		Long: `Profiles are complete MeshOperator specs to start an installation from:
default (pilot and an ingress gateway), demo (everything, access logs and
full tracing, small requests), minimal (pilot only) and empty (nothing).`,
	}
	cmd.AddCommand(newListCommand(ctx), newDumpCommand(ctx), newDiffCommand(ctx))
	return cmd
}
