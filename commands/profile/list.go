package profile

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/profiles"
)

// ListOptions holds the flags of `mesh profile list`.
type ListOptions struct {
	*cli.Context
	Output *cli.Output
}

// ProfileInfo is one row of `mesh profile list`.
type ProfileInfo struct {
	Name       string   `json:"name"`
	Components []string `json:"components"`
}

func newListCommand(ctx *cli.Context) *cobra.Command {
	o := &ListOptions{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the built-in profiles and the components each installs",
		Args:  cobra.NoArgs,
		RunE:  cmdutil.Run(o),
	}
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete has nothing to derive.
func (o *ListOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate has nothing to check beyond what the flags checked when parsed.
func (o *ListOptions) Validate() error { return nil }

// Run prints the profiles.
func (o *ListOptions) Run(context.Context) error {
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
	return o.Output.Write(o.Out, rows, func() error { return printList(o.Out, rows) })
}

func printList(w io.Writer, rows []ProfileInfo) error {
	t := cli.NewTable(w)
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
