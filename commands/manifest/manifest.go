// Package manifest holds `mesh manifest generate` and `mesh manifest diff`.
package manifest

import (
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mesh.dev/mesh/internal/cli"
)

type manifestObject = *unstructured.Unstructured

// NewCommand returns `mesh manifest` and its subcommands.
func NewCommand(ctx *cli.Context) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Render and compare the mesh's Kubernetes manifests",
	}
	cmd.AddCommand(newGenerateCommand(ctx), newDiffCommand(ctx))
	return cmd
}
