package profile

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/profiles"
)

// ListOptions holds the flags of `mesh profile list`.
type ListOptions struct {
	*cli.Context
	Output string
}

// ProfileInfo is one row of `mesh profile list`.
type ProfileInfo struct {
	Name       string   `json:"name"`
	Components []string `json:"components"`
}

func newListCommand(ctx *cli.Context) *cobra.Command {
	o := &ListOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the built-in profiles and the components each installs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ValidateOutput(o.Output, cli.OutputJSON, cli.OutputYAML); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml")
	return cmd
}

// Run prints the profiles.
func (o *ListOptions) Run() error {
	var rows []ProfileInfo
	for _, name := range profiles.Names() {
		op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=" + name}})
		if err != nil {
			return fmt.Errorf("built-in profile %s: %w", name, err)
		}
		comps := []string{}
		for _, in := range render.Inputs(op) {
			comps = append(comps, in.Component)
		}
		rows = append(rows, ProfileInfo{Name: name, Components: comps})
	}
	if o.Output != "" {
		return cli.PrintStructured(o.Out, o.Output, rows)
	}
	t := cli.NewTable(o.Out)
	fmt.Fprintln(t, "PROFILE\tCOMPONENTS")
	for _, r := range rows {
		c := strings.Join(r.Components, ", ")
		if c == "" {
			c = "(none)"
		}
		fmt.Fprintf(t, "%s\t%s\n", r.Name, c)
	}
	return t.Flush()
}
