package proxyconfig

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/cli"
)

// logLevels are the levels Envoy's /logging accepts.
var logLevels = []string{"trace", "debug", "info", "warning", "error", "critical", "off"}

// LogOptions holds the flags of `mesh proxy-config log`.
type LogOptions struct {
	*cli.Context
	sourceFlags
	Level  string
	Reset  bool
	Output *cli.Output
	source source
	// changes are (logger, level) pairs to apply in order; logger "" means all.
	changes [][2]string
}

func newLogCommand(ctx *cli.Context) *cobra.Command {
	o := &LogOptions{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:   "log [POD[.NAMESPACE]]",
		Short: "Show or set the proxy's log levels",
		Long: `Show the proxy's log level per logger, or change them.

--level takes a level for every logger (--level debug) or a comma-separated
list of LOGGER:LEVEL pairs (--level http:debug,router:trace). --reset sets
every logger back to warning. Levels: ` + strings.Join(logLevels, ", ") + `.
This needs a live proxy: a pod or --admin-address.`,
		Example: `  mesh proxy-config log productpage-v1-6b746f74dc-9stvs.default
  mesh proxy-config log --admin-address 127.0.0.1:15000 --level http:debug,router:debug`,
		Args: cobra.MaximumNArgs(1),
		RunE: cmdutil.Run(o),
	}
	o.sourceFlags.bind(cmd.Flags(), false)
	cmd.Flags().StringVar(&o.Level, "level", "", "set levels: LEVEL for all loggers, or LOGGER:LEVEL[,LOGGER:LEVEL...]")
	cmd.Flags().BoolVar(&o.Reset, "reset", false, "set every logger back to warning before applying --level")
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete resolves the proxy and splits --level into changes.
func (o *LogOptions) Complete(_ *cobra.Command, args []string) error {
	src, err := o.sourceFlags.resolve(o.Context, args)
	if err != nil {
		return err
	}
	o.source = src
	if o.Reset {
		o.changes = append(o.changes, [2]string{"", "warning"})
	}
	if o.Level == "" {
		return nil
	}
	for _, part := range strings.Split(o.Level, ",") {
		logger, level, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			logger, level = "", logger
		}
		o.changes = append(o.changes, [2]string{logger, level})
	}
	return nil
}

// Validate rejects unknown levels and malformed pairs.
func (o *LogOptions) Validate() error {
	if parts := strings.Split(o.Level, ","); len(parts) > 1 {
		for _, part := range parts {
			if !strings.Contains(part, ":") {
				return cli.Usagef("--level %q: %q is not LOGGER:LEVEL; a list must name a logger in every entry", o.Level, part)
			}
		}
	}
	for _, c := range o.changes {
		if c[0] == "" && strings.Contains(o.Level, ":") && len(o.changes) > 0 && c[1] == "" {
			return cli.Usagef("--level %q: missing level", o.Level)
		}
		if !oneOf(c[1], logLevels, false) {
			return cli.Usagef("--level %q: unknown level %q, expected one of %s", o.Level, c[1], strings.Join(logLevels, ", "))
		}
	}
	return nil
}

// Run applies the changes, then prints the levels the proxy reports.
func (o *LogOptions) Run(ctx context.Context) error {
	levels, err := withAdmin(ctx, o.Context, o.source, func(c *adminclient.Client) (map[string]string, error) {
		for _, ch := range o.changes {
			if _, err := c.SetLogLevel(ctx, ch[0], ch[1]); err != nil {
				if ch[0] != "" {
					return nil, fmt.Errorf("set logger %q to %s: %w", ch[0], ch[1], err)
				}
				return nil, fmt.Errorf("set all loggers to %s: %w", ch[1], err)
			}
		}
		return c.Loggers(ctx)
	})
	if err != nil {
		return err
	}
	return o.Output.Write(o.Out, levels, func() error {
		p := printer{out: o.Out}
		var rows [][]string
		for _, name := range adminclient.SortedLoggers(levels) {
			rows = append(rows, []string{name, levels[name]})
		}
		return p.table([]string{"LOGGER", "LEVEL"}, rows)
	})
}
