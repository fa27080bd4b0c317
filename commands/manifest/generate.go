package manifest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/manifest"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/spec"
)

// GenerateOptions holds the flags of `mesh manifest generate`.
type GenerateOptions struct {
	*cli.Context
	cmdutil.RenderFlags
	// OutDir, when set, receives one file per component instead of stdout.
	OutDir string

	op       *spec.MeshOperator
	warnings []string
}

func newGenerateCommand(ctx *cli.Context) *cobra.Command {
	o := &GenerateOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Render the mesh's Kubernetes manifest without touching a cluster",
		Long: `Render the manifest that 'mesh install' would apply, from a profile, -f
overlays and --set flags, through the embedded Helm charts. The output is
deterministic and in apply order: CRDs and the namespace first, admission
webhooks last.

Components and their names (also the install.mesh.io/component label):
base, pilot, ingress-gateway.<name>, egress-gateway.<name>.`,
		Example: `  # The default profile, to stdout
  mesh manifest generate

  # The demo profile without the egress gateway, one file per component
  mesh manifest generate --set profile=demo \
    --set components.egressGateways[name:mesh-egressgateway].enabled=false -o out/

  # An IstioOperator file, translated (warnings name what has no equivalent)
  mesh manifest generate -f my-istio-operator.yaml`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Run(o),
	}
	o.RenderFlags.AddFlags(cmd, true)
	cmd.Flags().StringVarP(&o.OutDir, "output", "o", "", "write one file per component into this directory instead of printing")
	return cmd
}

// Complete merges the spec.
func (o *GenerateOptions) Complete(*cobra.Command, []string) error {
	var err error
	o.op, o.warnings, err = o.Load()
	return err
}

// Validate has nothing to check beyond what the flags checked when parsed.
func (o *GenerateOptions) Validate() error { return nil }

// Run renders the whole manifest before writing anything, so a failure leaves no partial output.
func (o *GenerateOptions) Run(context.Context) error {
	cmdutil.PrintWarnings(o.Context, o.warnings)
	m, err := render.Render(o.op)
	if err != nil {
		return err
	}
	if o.OutDir == "" {
		return manifest.WriteYAML(o.Out, m.Objects())
	}
	files := make([][]byte, len(m.Components))
	names := make([]string, len(m.Components))
	for i, c := range m.Components {
		var b bytes.Buffer
		if err := manifest.WriteYAML(&b, c.Objects); err != nil {
			return fmt.Errorf("encode component %s: %w", c.Name, err)
		}
		files[i] = b.Bytes()
		names[i] = fmt.Sprintf("%02d-%s.yaml", i, c.Name)
	}
	return writeDir(o.OutDir, names, files, o)
}

var componentFile = regexp.MustCompile(`^[0-9]{2}-[a-z0-9.-]+\.yaml$`)

// writeDir replaces the component files in dir; other files are left alone.
func writeDir(dir string, names []string, files [][]byte, o *GenerateOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cli.Usagef("-o %s: %v", dir, err)
	}
	keep := map[string]bool{}
	for i, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[i], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", n, err)
		}
		keep[n] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		// Files of components no longer rendered would otherwise be applied with the rest.
		if !keep[e.Name()] && componentFile.MatchString(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(o.ErrOut, "Wrote %d component file(s) to %s\n", len(names), dir)
	return nil
}
