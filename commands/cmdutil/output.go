package cmdutil

import (
	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
)

// AddOutputFlag binds -o to out, with help listing its formats (and note,
// when given) and shell completion offering them.
func AddOutputFlag(cmd *cobra.Command, out *cli.Output, note string) {
	cmd.Flags().VarP(out, "output", "o", out.Usage(note))
	formats := out.Formats()
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return formats, cobra.ShellCompDirectiveNoFileComp
	})
}
