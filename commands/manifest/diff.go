package manifest

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/manifest"
)

// DiffOptions holds the flags of `mesh manifest diff`.
type DiffOptions struct {
	*cli.Context
	A, B   string
	Output string
}

func newDiffCommand(ctx *cli.Context) *cobra.Command {
	o := &DiffOptions{Context: ctx}
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
		RunE: func(cmd *cobra.Command, args []string) error {
			o.A, o.B = args[0], args[1]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// Validate rejects unknown output formats.
func (o *DiffOptions) Validate() error {
	return cli.ValidateOutput(o.Output, cli.OutputJSON, cli.OutputYAML)
}

// Run prints the differences and returns exit status 1 when there are any.
func (o *DiffOptions) Run() error {
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
	if o.Output != "" {
		if err := cli.PrintStructured(o.Out, o.Output, d); err != nil {
			return err
		}
	} else if err := printDiff(o.Out, o.Colors(), d, len(a)); err != nil {
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
			fmt.Fprintf(w, "    %s\n", FormatChange(f))
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

// FormatChange renders one field change on one line: "path: old -> new".
func FormatChange(f manifest.FieldChange) string {
	switch {
	case f.Old == nil:
		return fmt.Sprintf("%s: (added) %s", f.Path, short(f.New))
	case f.New == nil:
		return fmt.Sprintf("%s: %s (removed)", f.Path, short(f.Old))
	default:
		return fmt.Sprintf("%s: %s -> %s", f.Path, short(f.Old), short(f.New))
	}
}

// short prints a value on one line, abbreviating big ones.
func short(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSpace(string(b))
	if strings.Contains(s, "\n") {
		b, _ := jsonOneLine(v)
		s = b
	}
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
