// Package commands holds mesh's cobra commands: flags, argument checks and
// output. The behaviour lives in internal/.
package commands

import (
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	analyzecmd "mesh.dev/mesh/commands/analyze"
	"mesh.dev/mesh/commands/cmdutil"
	dashboardcmd "mesh.dev/mesh/commands/dashboard"
	installcmd "mesh.dev/mesh/commands/install"
	"mesh.dev/mesh/commands/kubeinject"
	"mesh.dev/mesh/commands/manifest"
	precheckcmd "mesh.dev/mesh/commands/precheck"
	"mesh.dev/mesh/commands/profile"
	"mesh.dev/mesh/commands/proxyconfig"
	"mesh.dev/mesh/commands/proxystatus"
	rolloutcmd "mesh.dev/mesh/commands/rollout"
	"mesh.dev/mesh/commands/tag"
	"mesh.dev/mesh/commands/uninstall"
	"mesh.dev/mesh/commands/upgrade"
	"mesh.dev/mesh/commands/verifyinstall"
	"mesh.dev/mesh/internal/cli"
)

// NewRootCommand builds the mesh command tree writing to streams.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	ctx := cli.NewContext(streams)
	root := &cobra.Command{
		Use:   "mesh",
		Short: "Install, inspect and debug the mesh service mesh",
		Long: `mesh installs and operates a service mesh for Kubernetes that speaks
Istio's configuration API and Envoy's xDS and admin APIs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return loadSettings(cmd)
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)

	ctx.ConfigFlags.AddFlags(root.PersistentFlags())
	root.PersistentFlags().BoolVar(&ctx.Color, "color", true, "colour the output (also off when NO_COLOR is set or output is not a terminal)")

	root.AddCommand(
		newVersionCommand(ctx),
		newCompletionCommand(ctx),
		proxyconfig.NewCommand(ctx),
		proxystatus.NewCommand(ctx),
		rolloutcmd.NewCommand(ctx),
		manifest.NewCommand(ctx),
		profile.NewCommand(ctx),
		installcmd.NewCommand(ctx),
		upgrade.NewCommand(ctx),
		uninstall.NewCommand(ctx),
		precheckcmd.NewCommand(ctx),
		verifyinstall.NewCommand(ctx),
		tag.NewCommand(ctx),
		analyzecmd.NewCommand(ctx),
		kubeinject.NewCommand(ctx),
		dashboardcmd.NewCommand(ctx),
	)
	cmdutil.MarkUsage(root)
	return root
}

// IsUnknownCommand reports whether err is cobra's complaint about a command it does not know.
func IsUnknownCommand(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "unknown command")
}
