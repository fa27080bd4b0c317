package manifest

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/manifest"
)

// DiffOptions holds the flags of `mesh manifest diff`.
type DiffOptions struct {
	*cli.Context
	A, B   string
	Output *cli.Output
}

func newDiffCommand(ctx *cli.Context) *cobra.Command {
	o := &DiffOptions{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:   "diff A.yaml B.yaml",
		Short: "Compare two manifests object by object",
		Long: `Compare two manifests object by object, ignoring their order, and list the
objects added, removed and changed, with the changed fields. Exits 1 when
they differ, so CI can gate on it.`,
		Example: `  mesh manifest generate > before.yaml
  mesh manifest generate --set profile=demo > after.yaml
  mesh manifest diff before.yaml after.yaml`,
		Args: cobra.ExactArgs(2),
		RunE: cmdutil.Run(o),
	}
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete takes the two manifest paths.
func (o *DiffOptions) Complete(_ *cobra.Command, args []string) error {
	o.A, o.B = args[0], args[1]
	return nil
}

// Validate has nothing to check beyond what the flags checked when parsed.
func (o *DiffOptions) Validate() error { return nil }

// Run prints the differences and returns exit status 1 when there are any.
func (o *DiffOptions) Run(context.Context) error {
	a, err := readManifest(o.A)
	if err != nil {
		return err
	}
	b, err := readManifest(o.B)
	if err != nil {
		return err
	}
	d, err := manifest.Compare(a, b)
	if err != nil {
		return cli.Data(err)
	}
	if err := o.Output.Write(o.Out, d, func() error { return printDiff(o.Out, o.Colors(), d, len(a)) }); err != nil {
		return err
	}
	if d.Empty() {
		return nil
	}
	return &cli.SilentError{Code: cli.ExitError}
}

func readManifest(path string) ([]manifestObject, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.Usagef("read manifest: %v", err)
	}
	objs, err := manifest.Parse(path, data)
	if err != nil {
		return nil, cli.Data(err)
	}
	return objs, nil
}

func printDiff(w io.Writer, c *cli.Colors, d *manifest.Diff, total int) error {
	if d.Empty() {
		_, err := fmt.Fprintf(w, "The manifests are the same (%d objects).\n", total)
		return err
	}
	for _, k := range d.Added {
		fmt.Fprintf(w, "%s %s\n", c.OK("+ added:  "), k)
	}
	for _, k := range d.Removed {
		fmt.Fprintf(w, "%s %s\n", c.Bad("- removed:"), k)
	}
	for _, ch := range d.Changed {
		fmt.Fprintf(w, "%s %s\n", c.Warn("~ changed:"), ch.Key)
		for _, f := range ch.Fields {
			old, oldText := f.Old.(string)
			cur, newText := f.New.(string)
			if oldText && newText && (strings.Contains(old, "\n") || strings.Contains(cur, "\n")) {
				// Embedded documents (mesh config, injector values) read better line by line.
				fmt.Fprintf(w, "    %s:\n", f.Path)
				for _, l := range manifest.LineDiff(old, cur) {
					fmt.Fprintf(w, "      %s\n", paintLine(c, l))
				}
				continue
			}
			fmt.Fprintf(w, "    %s\n", manifest.FormatChange(f))
		}
	}
	_, err := fmt.Fprintf(w, "%d added, %d removed, %d changed\n", len(d.Added), len(d.Removed), len(d.Changed))
	return err
}

func paintLine(c *cli.Colors, l string) string {
	if strings.HasPrefix(l, "+") {
		return c.OK(l)
	}
	return c.Bad(l)
}
