// Package proxystatus holds `mesh proxy-status`: which proxies mesh-pilot
// serves and whether each is in sync, and for one proxy, how its config
// differs from what pilot sent it.
package proxystatus

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/configdump"
	pcfg "mesh.dev/mesh/internal/proxyconfig"
	"mesh.dev/mesh/internal/syncstatus"
)

// Options holds the flags of `mesh proxy-status`.
type Options struct {
	*cli.Context
	cmdutil.PilotFlags
	AdminAddress string
	AdminPort    int
	Output       *cli.Output

	pod, podNamespace string
}

// NewCommand returns `mesh proxy-status`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:     "proxy-status [POD[.NAMESPACE]]",
		Aliases: []string{"ps"},
		Short:   "Show whether each proxy has the config mesh-pilot sent it",
		Long: `Without a pod, list every proxy connected to mesh-pilot with the state of each
xDS type (SYNCED, STALE, NOT SENT or NACK), the version pilot sent, the
pilot replica it is connected to (every running replica is asked), and the
cluster and release the proxy told pilot in its node metadata (CLUSTER_ID,
ISTIO_VERSION; "-" when it said none). A pod in sidecar fallback (its node
agent let its traffic bypass a dead or hung proxy) is listed below the
table with the reason; when its proxy is not connected, its row shows
FALLBACK in every xDS column.

With a pod (or --admin-address for a proxy outside Kubernetes), compare what
pilot sent that proxy with the proxy's own /config_dump, resource by
resource, like 'mesh proxy-config diff'; exit 1 when they differ.

Pilot is reached through port-forwards to the mesh-pilot pods in
--pilot-namespace, or at --pilot-address HOST:PORT (one replica's debug port, 15014).`,
		Example: `  mesh proxy-status
  mesh proxy-status --pilot-address 127.0.0.1:15014
  mesh proxy-status productpage-v1-6b746f74dc-9stvs.default`,
		Args: cobra.MaximumNArgs(1),
		RunE: cmdutil.Run(o),
	}
	o.PilotFlags.AddFlags(cmd)
	fs := cmd.Flags()
	fs.StringVar(&o.AdminAddress, "admin-address", "", "compare the proxy whose admin API is at host:port (instead of a pod)")
	fs.IntVar(&o.AdminPort, "admin-port", adminclient.DefaultPort, "the proxy's admin port inside its pod")
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete resolves the pod argument.
func (o *Options) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.pod, o.podNamespace = adminclient.SplitPodName(args[0])
		if o.podNamespace == "" {
			ns, _, err := o.Namespace()
			if err != nil {
				return err
			}
			o.podNamespace = ns
		}
	}
	return nil
}

// Validate rejects conflicting flags.
func (o *Options) Validate() error {
	if o.pod != "" && o.AdminAddress != "" {
		return cli.Usagef("give either a pod or --admin-address, not both")
	}
	if o.AdminPort < 1 || o.AdminPort > 65535 {
		return cli.Usagef("--admin-port %d: expected a port between 1 and 65535", o.AdminPort)
	}
	return nil
}

// Run prints the status table, or the comparison for one proxy.
func (o *Options) Run(ctx context.Context) error {
	return o.WithPilots(ctx, o.Context, func(pilots []cmdutil.Pilot) error {
		statuses, err := gather(ctx, pilots)
		if err != nil {
			return err
		}
		if o.pod == "" && o.AdminAddress == "" {
			return o.printTable(statuses)
		}
		return o.compare(ctx, pilots, statuses)
	})
}

// gather asks every replica for its proxies and merges them by name, each
// marked with the replica that serves it.
func gather(ctx context.Context, pilots []cmdutil.Pilot) ([]syncstatus.ProxyStatus, error) {
	var statuses []syncstatus.ProxyStatus
	for _, p := range pilots {
		st, err := p.Client.Syncz(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		for i := range st {
			st[i].Pilot = p.Name
		}
		statuses = append(statuses, st...)
	}
	statuses = mergeFallbacks(statuses)
	sort.SliceStable(statuses, func(i, j int) bool { return statuses[i].Name() < statuses[j].Name() })
	return statuses, nil
}

// mergeFallbacks keeps one row per pod in sidecar fallback: every replica
// reports such a pod whose proxy is not connected to it, so a row from
// the replica that serves the proxy wins, and the others say it once.
func mergeFallbacks(statuses []syncstatus.ProxyStatus) []syncstatus.ProxyStatus {
	connected := map[string]bool{}
	for _, s := range statuses {
		if !s.Disconnected {
			connected[s.Name()] = true
		}
	}
	seen := map[string]bool{}
	out := statuses[:0]
	for _, s := range statuses {
		if s.Disconnected {
			if connected[s.Name()] || seen[s.Name()] {
				continue
			}
			seen[s.Name()] = true
			s.Pilot = ""
		}
		out = append(out, s)
	}
	return out
}

func (o *Options) printTable(statuses []syncstatus.ProxyStatus) error {
	if o.Output.IsStructured() {
		return cli.PrintStructured(o.Out, o.Output.Format(), statuses)
	}
	c := o.Colors()
	tw := cli.NewTable(o.Out)
	fmt.Fprintln(tw, "NAME\tCLUSTER\t"+strings.Join(syncstatus.Types, "\t")+"\tPILOT\tVERSION")
	var nacks, fallbacks []string
	for _, s := range statuses {
		cells := []string{s.Name(), orDash(s.ClusterID)}
		if s.Fallback != "" {
			how := "its proxy is connected but the pod's traffic still bypasses it"
			if s.Disconnected {
				how = "no proxy connected"
			}
			fallbacks = append(fallbacks, fmt.Sprintf("%s: %s, %s", s.Name(), s.Fallback, how))
		}
		for _, typ := range syncstatus.Types {
			if s.Disconnected {
				cells = append(cells, c.Warn("FALLBACK"))
				continue
			}
			ts := s.Status(typ)
			cell := ts.Status
			if ts.Sent != "" {
				cell += " (" + ts.Sent + ")"
			}
			switch ts.Status {
			case "SYNCED":
				cell = c.OK(cell)
			case "NACK":
				cell = c.Bad(cell)
				nacks = append(nacks, fmt.Sprintf("%s %s: %s", s.Name(), typ, ts.Nack))
			case "STALE":
				cell = c.Warn(cell)
			}
			cells = append(cells, cell)
		}
		cells = append(cells, orDash(s.Pilot), orDash(s.IstioVersion))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(nacks) > 0 {
		fmt.Fprintln(o.Out, "\nRejected config (NACK):")
		for _, n := range nacks {
			fmt.Fprintln(o.Out, "  "+n)
		}
	}
	if len(fallbacks) > 0 {
		fmt.Fprintln(o.Out, "\nIn sidecar fallback (the pod's traffic goes direct, without mTLS or policy; docs/fallback.md):")
		for _, f := range fallbacks {
			fmt.Fprintln(o.Out, "  "+f)
		}
	}
	return nil
}

// orDash keeps an unknown cell visible ("-"), so the table's columns stay
// apart for readers that split rows on runs of spaces.
func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

// compare diffs what pilot sent one proxy against the proxy's own dump.
func (o *Options) compare(ctx context.Context, pilots []cmdutil.Pilot, statuses []syncstatus.ProxyStatus) error {
	label, id, proxyDump, err := o.proxyDump(ctx)
	if err != nil {
		return err
	}
	if bs := proxyDump.Of(configdump.KindBootstrap); id == "" && len(bs) > 0 {
		id = bs[0].Name
	}
	if id == "" && o.pod != "" {
		want := o.pod + "." + o.podNamespace
		for _, s := range statuses {
			if s.Name() == want {
				id = s.Proxy
			}
		}
	}
	if id == "" {
		return fmt.Errorf("%s: cannot tell the proxy's node id (no bootstrap node in its dump, and no proxy of that name connected to pilot)", label)
	}
	// Ask the replica the proxy is connected to: only it knows what it sent.
	p := pilots[0]
	for _, st := range statuses {
		if st.Proxy == id {
			for _, cand := range pilots {
				if cand.Name == st.Pilot {
					p = cand
				}
			}
		}
	}
	raw, err := p.Client.ConfigDump(ctx, id)
	if err != nil {
		return err
	}
	pilotDump, err := configdump.Parse(raw, configdump.Options{Kinds: pcfg.SentKinds})
	if err != nil {
		return cli.Data(fmt.Errorf("pilot's config dump for %s: %w", id, err))
	}
	d, err := pcfg.Compare(pcfg.Sent(pilotDump), pcfg.Sent(proxyDump))
	if err != nil {
		return err
	}
	if o.Output.IsStructured() {
		err = cli.PrintStructured(o.Out, o.Output.Format(), d)
	} else {
		err = pcfg.PrintDiff(o.Out, o.Colors(), d, "pilot (sent to "+syncstatus.NodeName(id)+")", label)
	}
	if err != nil {
		return err
	}
	if !d.Empty() {
		return &cli.SilentError{Code: 1}
	}
	return nil
}

// proxyDump fetches the proxy's config dump and, when it says, its node id.
func (o *Options) proxyDump(ctx context.Context) (string, string, *configdump.Dump, error) {
	addr, label := o.AdminAddress, "admin://"+o.AdminAddress
	if o.pod != "" {
		cfg, err := o.RESTConfig()
		if err != nil {
			return "", "", nil, fmt.Errorf("kubeconfig: %w", err)
		}
		fw, err := adminclient.PortForward(ctx, cfg, o.podNamespace, o.pod, o.AdminPort, o.ErrOut)
		if err != nil {
			return "", "", nil, err
		}
		defer fw.Close()
		addr, label = fw.LocalAddress, o.pod+"."+o.podNamespace
	}
	c, err := adminclient.New(addr)
	if err != nil {
		return "", "", nil, cli.Usage(err)
	}
	// A proxy too old for /server_info still has its bootstrap in the dump.
	id, _ := c.NodeID(ctx)
	raw, err := c.ConfigDump(ctx, true)
	if err != nil {
		return "", "", nil, err
	}
	kinds := append([]configdump.Kind{configdump.KindBootstrap}, pcfg.SentKinds...)
	d, err := configdump.Parse(raw, configdump.Options{Kinds: kinds})
	if err != nil {
		return "", "", nil, cli.Data(fmt.Errorf("%s: %w", label, err))
	}
	return label, id, d, nil
}
