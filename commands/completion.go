package commands

import (
	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
)

func newCompletionCommand(ctx *cli.Context) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print a completion script for your shell. For example:

  source <(mesh completion bash)
  mesh completion zsh > "${fpath[1]}/_mesh"
  mesh completion fish > ~/.config/fish/completions/mesh.fish`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(ctx.Out, true)
			case "zsh":
				return root.GenZshCompletion(ctx.Out)
			case "fish":
				return root.GenFishCompletion(ctx.Out, true)
			}
			return cli.Usagef("unknown shell %q: expected bash, zsh or fish", args[0])
		},
	}
}
