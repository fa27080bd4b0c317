package proxyconfig

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/configdump"
	"mesh.dev/mesh/internal/proxyconfig"
)

// printer writes either a table or, for -o json|yaml, the raw resources behind its rows.
type printer struct {
	out    io.Writer
	format string
}

// raw turns resources into JSON values that print as the proxy sent them.
func raw(rs []*configdump.Resource) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(rs))
	for _, r := range rs {
		out = append(out, json.RawMessage(r.Raw))
	}
	return out
}

func (p printer) structured(v any) error { return cli.PrintStructured(p.out, p.format, v) }

func (p printer) table(header []string, rows [][]string) error {
	tw := cli.NewTable(p.out)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func (p printer) clusters(rows []proxyconfig.ClusterRow) error {
	if p.format != "" {
		return p.structured(raw(proxyconfig.Resources(rows)))
	}
	return p.table([]string{"SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"}, clusterCells(rows))
}

func clusterCells(rows []proxyconfig.ClusterRow) [][]string {
	var cells [][]string
	for _, r := range rows {
		cells = append(cells, []string{r.FQDN, r.Port, r.Subset, r.Direction, r.Type, r.DestinationRule})
	}
	return cells
}

func (p printer) listeners(rows []proxyconfig.ListenerRow) error {
	if p.format != "" {
		return p.structured(raw(proxyconfig.Resources(rows)))
	}
	return p.table([]string{"NAME", "ADDRESS:PORT", "MATCH", "DESTINATION"}, listenerCells(rows))
}

func listenerCells(rows []proxyconfig.ListenerRow) [][]string {
	var cells [][]string
	for _, r := range rows {
		cells = append(cells, []string{orDash(r.Name), r.AddressPort(), r.Match, r.Destination})
	}
	return cells
}

func (p printer) routes(rows []proxyconfig.RouteRow) error {
	if p.format != "" {
		return p.structured(raw(proxyconfig.Resources(rows)))
	}
	return p.table([]string{"NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"}, routeCells(rows))
}

func routeCells(rows []proxyconfig.RouteRow) [][]string {
	var cells [][]string
	for _, r := range rows {
		cells = append(cells, []string{orDash(r.Name), r.VirtualHost, r.Domains, r.Match, r.VirtualService})
	}
	return cells
}

func (p printer) endpoints(rows []proxyconfig.EndpointRow, d *configdump.Dump) error {
	if p.format != "" {
		if d.HostStatuses != nil {
			// Live health comes from /clusters, which has no resources to print.
			return p.structured(rows)
		}
		return p.structured(raw(proxyconfig.Resources(rows)))
	}
	return p.table([]string{"ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"}, endpointCells(rows))
}

func endpointCells(rows []proxyconfig.EndpointRow) [][]string {
	var cells [][]string
	for _, r := range rows {
		cells = append(cells, []string{r.Address(), r.Status, r.OutlierCheck, r.Cluster})
	}
	return cells
}

func (p printer) secrets(rows []proxyconfig.SecretRow) error {
	if p.format != "" {
		return p.structured(raw(proxyconfig.Resources(rows)))
	}
	return p.table([]string{"RESOURCE NAME", "TYPE", "STATUS", "VALID", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE"}, secretCells(rows))
}

func secretCells(rows []proxyconfig.SecretRow) [][]string {
	var cells [][]string
	for _, r := range rows {
		cells = append(cells, []string{orDash(r.Name), r.Type, r.Status, r.Valid, r.Serial, r.NotAfter, r.NotBefore})
	}
	return cells
}

func (p printer) bootstrap(b proxyconfig.BootstrapSummary) error {
	if p.format != "" {
		return p.structured(json.RawMessage(b.Source().Raw))
	}
	tw := cli.NewTable(p.out)
	fmt.Fprintf(tw, "NODE ID:\t%s\n", b.NodeID)
	fmt.Fprintf(tw, "CLUSTER:\t%s\n", b.Cluster)
	if b.IstioVersion != "" {
		fmt.Fprintf(tw, "ISTIO VERSION:\t%s\n", b.IstioVersion)
	}
	if b.EnvoyVersion != "" {
		fmt.Fprintf(tw, "ENVOY VERSION:\t%s\n", b.EnvoyVersion)
	}
	fmt.Fprintf(tw, "ADMIN:\t%s\n", b.Admin)
	fmt.Fprintf(tw, "XDS SERVERS:\t%s\n", orDash(strings.Join(b.XDSServers, ", ")))
	if len(b.Metadata) > 0 {
		fmt.Fprintln(tw, "METADATA:\t")
		for _, k := range sortedKeys(b.Metadata) {
			fmt.Fprintf(tw, "  %s:\t%s\n", k, b.Metadata[k])
		}
	}
	return tw.Flush()
}

// all prints every table, each under a heading, or one object keyed by kind for -o json|yaml.
func (p printer) all(d *configdump.Dump, f proxyconfig.Filter, now time.Time) error {
	clusters := proxyconfig.Clusters(d, proxyconfig.Filter{FQDN: f.FQDN, Port: f.Port, Direction: f.Direction, Subset: f.Subset})
	listeners := proxyconfig.Listeners(d, proxyconfig.Filter{Address: f.Address, Port: f.Port, Name: f.Name})
	routes := proxyconfig.Routes(d, proxyconfig.Filter{Name: f.Name})
	endpoints := proxyconfig.Endpoints(d, proxyconfig.Filter{Address: f.Address, Port: f.Port, Cluster: f.Cluster, Status: f.Status})
	secrets := proxyconfig.Secrets(d, proxyconfig.Filter{Name: f.Name}, now)
	if p.format != "" {
		v := map[string]any{
			"clusters":  raw(proxyconfig.Resources(clusters)),
			"listeners": raw(proxyconfig.Resources(listeners)),
			"routes":    raw(proxyconfig.Resources(routes)),
			"secrets":   raw(proxyconfig.Resources(secrets)),
		}
		if d.HostStatuses != nil {
			v["endpoints"] = endpoints
		} else {
			v["endpoints"] = raw(proxyconfig.Resources(endpoints))
		}
		if b, ok := proxyconfig.Bootstrap(d); ok {
			v["bootstrap"] = json.RawMessage(b.Source().Raw)
		}
		return p.structured(v)
	}
	sections := []struct {
		header []string
		cells  [][]string
	}{
		{[]string{"SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"}, clusterCells(clusters)},
		{[]string{"NAME", "ADDRESS:PORT", "MATCH", "DESTINATION"}, listenerCells(listeners)},
		{[]string{"NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"}, routeCells(routes)},
		{[]string{"ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"}, endpointCells(endpoints)},
		{[]string{"RESOURCE NAME", "TYPE", "STATUS", "VALID", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE"}, secretCells(secrets)},
	}
	for i, s := range sections {
		if i > 0 {
			fmt.Fprintln(p.out)
		}
		if err := p.table(s.header, s.cells); err != nil {
			return err
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
