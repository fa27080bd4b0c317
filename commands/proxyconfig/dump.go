package proxyconfig

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/configdump"
)

// DumpOptions holds the flags of `mesh proxy-config dump`.
type DumpOptions struct {
	*cli.Context
	sourceFlags
	Output *cli.Output
	source source
}

func newDumpCommand(ctx *cli.Context) *cobra.Command {
	o := &DumpOptions{Context: ctx, Output: cli.NewOutput(cli.OutputJSON, cli.OutputJSON, cli.OutputYAML)}
	cmd := &cobra.Command{
		Use:   "dump [POD[.NAMESPACE]]",
		Short: "Print the proxy's whole /config_dump, endpoints included",
		Example: `  mesh proxy-config dump productpage-v1-6b746f74dc-9stvs.default > dump.json
  mesh proxy-config dump --admin-address 127.0.0.1:15000 -o yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: cmdutil.Run(o),
	}
	o.sourceFlags.bind(cmd.Flags(), true)
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete resolves where the dump comes from.
func (o *DumpOptions) Complete(_ *cobra.Command, args []string) error {
	src, err := o.sourceFlags.resolve(o.Context, args)
	o.source = src
	return err
}

// Validate has nothing to check beyond what the flags checked when parsed.
func (o *DumpOptions) Validate() error { return nil }

// Run prints the dump. It is checked to be a well-formed config dump
// first, so a script saving it learns about a broken proxy answer early.
func (o *DumpOptions) Run(ctx context.Context) error {
	var data []byte
	var err error
	if o.source.File != "" {
		data, err = readFile(o.Context, o.source.File)
	} else {
		data, err = withAdmin(ctx, o.Context, o.source, func(c *adminclient.Client) ([]byte, error) { return c.ConfigDump(ctx, true) })
	}
	if err != nil {
		return err
	}
	if err := configdump.Validate(data); err != nil {
		return cli.Data(fmt.Errorf("%s: %w", o.source.Label, err))
	}
	if _, err := parse(o.source.Label, data, configdump.Options{Kinds: []configdump.Kind{configdump.KindBootstrap}}); err != nil {
		return err
	}
	if o.Output.Format() == cli.OutputYAML {
		y, err := yaml.JSONToYAML(data)
		if err != nil {
			return cli.Data(fmt.Errorf("%s: convert to yaml: %w", o.source.Label, err))
		}
		_, err = o.Out.Write(y)
		return err
	}
	if _, err := o.Out.Write(data); err != nil {
		return err
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		_, err = fmt.Fprintln(o.Out)
	}
	return err
}
