package proxyconfig

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/configdump"
	"mesh.dev/mesh/internal/proxyconfig"
)

// showKind is one table subcommand.
type showKind struct {
	use     string
	aliases []string
	short   string
	kinds   []configdump.Kind // what to decode
	fields  []string          // when set, the only top-level fields of kinds[0] the table needs
	filters []string          // filter flags it takes
	want    fetchWant
}

var showKinds = []showKind{
	{use: "all", short: "Show clusters, listeners, routes, endpoints and secrets",
		filters: []string{"fqdn", "port", "direction", "subset", "name", "address", "cluster", "status"}, want: fetchWant{EDS: true, Clusters: true}},
	{use: "cluster", aliases: []string{"clusters", "c"}, short: "Show the proxy's clusters",
		kinds: []configdump.Kind{configdump.KindCluster}, filters: []string{"fqdn", "port", "direction", "subset"},
		// Big meshes have thousands of clusters; the table needs four fields of each.
		fields: []string{"name", "type", "cluster_type", "metadata.filter_metadata.istio.config"}},
	{use: "listener", aliases: []string{"listeners", "l"}, short: "Show the proxy's listeners, one row per filter chain",
		kinds: []configdump.Kind{configdump.KindListener}, filters: []string{"address", "port", "name"}},
	{use: "route", aliases: []string{"routes", "r"}, short: "Show the proxy's routes",
		kinds: []configdump.Kind{configdump.KindRoute}, filters: []string{"name"}},
	{use: "endpoint", aliases: []string{"endpoints", "ep"}, short: "Show the proxy's endpoints with their health",
		kinds: []configdump.Kind{configdump.KindEndpoint}, filters: []string{"address", "port", "cluster", "status"}, want: fetchWant{EDS: true, Clusters: true}},
	{use: "secret", aliases: []string{"secrets", "s"}, short: "Show the proxy's TLS secrets and their certificates",
		kinds: []configdump.Kind{configdump.KindSecret}, filters: []string{"name"}},
	{use: "bootstrap", aliases: []string{"b"}, short: "Show the proxy's bootstrap: node, admin and xDS servers",
		kinds: []configdump.Kind{configdump.KindBootstrap}},
}

// ShowOptions holds the flags of the table subcommands of `mesh proxy-config`.
type ShowOptions struct {
	*cli.Context
	sourceFlags
	Output *cli.Output
	Filter proxyconfig.Filter
	kind   showKind
	source source
	// Now decides whether certificates are valid; tests pin it.
	Now func() time.Time
}

func newShowCommand(ctx *cli.Context, k showKind) *cobra.Command {
	o := &ShowOptions{Context: ctx, kind: k, Output: cli.Structured(), Now: func() time.Time { return clock() }}
	cmd := &cobra.Command{
		Use:     k.use + " [POD[.NAMESPACE]]",
		Aliases: k.aliases,
		Short:   k.short,
		Example: fmt.Sprintf(`  mesh proxy-config %[1]s productpage-v1-6b746f74dc-9stvs.default
  mesh proxy-config %[1]s --admin-address 127.0.0.1:15000
  mesh proxy-config %[1]s -f config_dump.json -o yaml`, k.use),
		Args: cobra.MaximumNArgs(1),
		RunE: cmdutil.Run(o),
	}
	fs := cmd.Flags()
	o.sourceFlags.bind(fs, true)
	cmdutil.AddOutputFlag(cmd, o.Output, "json and yaml print the matching resources as the proxy has them, not a table")
	for _, f := range k.filters {
		switch f {
		case "fqdn":
			fs.StringVar(&o.Filter.FQDN, "fqdn", "", "only clusters whose service FQDN contains this")
		case "port":
			fs.IntVar(&o.Filter.Port, "port", 0, "only resources on this port")
		case "direction":
			fs.StringVar(&o.Filter.Direction, "direction", "", "only clusters in this direction: inbound, outbound, inbound-vip or outbound-vip")
		case "subset":
			fs.StringVar(&o.Filter.Subset, "subset", "", "only clusters of this subset")
		case "name":
			fs.StringVar(&o.Filter.Name, "name", "", "only resources whose name contains this")
		case "address":
			fs.StringVar(&o.Filter.Address, "address", "", "only resources whose address contains this")
		case "cluster":
			fs.StringVar(&o.Filter.Cluster, "cluster", "", "only endpoints of clusters whose name contains this")
		case "status":
			fs.StringVar(&o.Filter.Status, "status", "", "only endpoints with this health status: HEALTHY, UNHEALTHY, DRAINING, TIMEOUT, DEGRADED or UNKNOWN")
		}
	}
	return cmd
}

// Complete resolves where the config comes from.
func (o *ShowOptions) Complete(_ *cobra.Command, args []string) error {
	src, err := o.sourceFlags.resolve(o.Context, args)
	if err != nil {
		return err
	}
	o.source = src
	return nil
}

// clock is the time certificates are judged at; tests pin it.
var clock = time.Now

var (
	directions = []string{"inbound", "outbound", "inbound-vip", "outbound-vip"}
	statuses   = []string{"HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED", "UNKNOWN"}
)

// Validate rejects bad flag values before anything is fetched.
func (o *ShowOptions) Validate() error {
	if o.Filter.Port < 0 || o.Filter.Port > 65535 {
		return cli.Usagef("--port %d: expected a port between 1 and 65535", o.Filter.Port)
	}
	if d := o.Filter.Direction; d != "" && !oneOf(d, directions, false) {
		return cli.Usagef("--direction %q: expected one of %s", d, strings.Join(directions, ", "))
	}
	if s := o.Filter.Status; s != "" && !oneOf(s, statuses, true) {
		return cli.Usagef("--status %q: expected one of %s", s, strings.Join(statuses, ", "))
	}
	return nil
}

func oneOf(v string, set []string, fold bool) bool {
	for _, s := range set {
		if v == s || (fold && strings.EqualFold(v, s)) {
			return true
		}
	}
	return false
}

// Run fetches and prints the table, or the matching resources for -o json|yaml.
func (o *ShowOptions) Run(ctx context.Context) error {
	opts := configdump.Options{Kinds: o.kind.kinds}
	if o.kind.fields != nil && !o.Output.IsStructured() {
		opts.Fields = map[configdump.Kind][]string{o.kind.kinds[0]: o.kind.fields}
	}
	d, err := load(ctx, o.Context, o.source, o.kind.want, opts)
	if err != nil {
		return err
	}
	p := printer{out: o.Out, format: o.Output.Format()}
	switch o.kind.use {
	case "cluster":
		return p.clusters(proxyconfig.Clusters(d, o.Filter))
	case "listener":
		return p.listeners(proxyconfig.Listeners(d, o.Filter))
	case "route":
		return p.routes(proxyconfig.Routes(d, o.Filter))
	case "endpoint":
		return p.endpoints(proxyconfig.Endpoints(d, o.Filter), d)
	case "secret":
		return p.secrets(proxyconfig.Secrets(d, o.Filter, o.Now()))
	case "bootstrap":
		b, ok := proxyconfig.Bootstrap(d)
		if !ok {
			return cli.Dataf("%s: the dump has no bootstrap section", o.source.Label)
		}
		return p.bootstrap(b)
	default:
		return p.all(d, o.Filter, o.Now())
	}
}
