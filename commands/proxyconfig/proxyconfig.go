// Package proxyconfig holds `mesh proxy-config`: show, dump and diff the
// configuration of an Envoy-compatible proxy.
package proxyconfig

import (
	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
)

// NewCommand returns `mesh proxy-config` and its subcommands.
func NewCommand(ctx *cli.Context) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "proxy-config",
		Aliases: []string{"pc"},
		Short:   "Show, dump and diff the configuration of a proxy",
		Long: `Show the configuration an Envoy-compatible proxy (mesh-proxy or Envoy) is running.

The proxy is reached through a port-forward to its pod (NAME[.NAMESPACE]), at
--admin-address HOST:PORT, or read from a saved /config_dump with -f FILE.`,
	}
	for _, k := range showKinds {
		cmd.AddCommand(newShowCommand(ctx, k))
	}
	cmd.AddCommand(newDumpCommand(ctx), newLogCommand(ctx), newDiffCommand(ctx))
	return cmd
}
