// Package dashboard holds `mesh dashboard`: port-forwards to the mesh's web
// UIs (addons, a proxy's admin page, pilot's debug page) that open them in a
// browser, with istioctl dashboard's flags. The behaviour is in
// internal/dashboard.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/dashboard"
)

// meshNamespace is where addons and pilot run unless -n says otherwise.
const meshNamespace = "mesh-system"

// common are the flags every `mesh dashboard` subcommand shares.
type common struct {
	Address string
	Port    int
	Browser bool
}

// NewCommand returns `mesh dashboard` and its subcommands.
func NewCommand(ctx *cli.Context) *cobra.Command {
	c := &common{}
	cmd := &cobra.Command{
		Use:     "dashboard",
		Aliases: []string{"dash", "d"},
		Short:   "Open the mesh's web UIs (addons, a proxy's admin page, pilot) through a port-forward",
		Long: `Each subcommand port-forwards to a pod and opens the page in a browser. The
URL is printed first on standard output; with --browser=false, or when no
browser can be started (no $BROWSER, and on Linux no display or no xdg-open),
only the URL is printed. The forward lasts until Ctrl-C.

Addons are looked up by their pods' labels (Istio's sample addons' labels) in
-n, mesh-system when -n is not given. Without --port the local port is the
pod's port, or a free one when that is taken here.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 0 {
				return cli.Usagef("unknown dashboard %q: expected one of prometheus, grafana, kiali, jaeger, zipkin, envoy, controlz", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	fs := cmd.PersistentFlags()
	fs.IntVarP(&c.Port, "port", "p", 0, "local port to listen on (default: the pod's port, or a free one when that is taken)")
	fs.StringVar(&c.Address, "address", "localhost", "address to listen on: an IP address, or localhost for 127.0.0.1 and ::1 (either is enough)")
	fs.BoolVar(&c.Browser, "browser", true, "open the page in a browser; with --browser=false only print its URL")
	for _, a := range dashboard.Addons {
		cmd.AddCommand(newAddonCommand(ctx, c, a))
	}
	cmd.AddCommand(newEnvoyCommand(ctx, c), newControlzCommand(ctx, c))
	return cmd
}

// Options hold one subcommand's flags and what Complete derives.
type Options struct {
	*cli.Context
	common *common

	Kind     string // an addon's name, "envoy" or "controlz"
	UIPort   int
	Selector string

	addon     dashboard.Addon
	ref       string
	namespace string
	browser   dashboard.Browser
}

func newAddonCommand(ctx *cli.Context, c *common, a dashboard.Addon) *cobra.Command {
	o := &Options{Context: ctx, common: c, Kind: a.Name, addon: a}
	cmd := &cobra.Command{
		Use:   a.Name,
		Short: fmt.Sprintf("Open the %s web UI", a.Title),
		Long: fmt.Sprintf(`Open the %s web UI: a port-forward to the first running pod labelled
%s in -n (mesh-system when not given), port --ui-port.`, a.Title, a.Selector),
		Example: fmt.Sprintf("  mesh dashboard %s\n  mesh dashboard %s -n monitoring --browser=false", a.Name, a.Name),
		Args:    cobra.NoArgs,
		RunE:    cmdutil.Run(o),
	}
	cmd.Flags().IntVar(&o.UIPort, "ui-port", a.Port, "the UI's port in the pod")
	return cmd
}

func newEnvoyCommand(ctx *cli.Context, c *common) *cobra.Command {
	o := &Options{Context: ctx, common: c, Kind: "envoy"}
	cmd := &cobra.Command{
		Use:     "envoy [TYPE/]NAME[.NAMESPACE]",
		Aliases: []string{"proxy"},
		Short:   "Open a proxy's admin page (Envoy's admin API, port 15000)",
		Long: `Open the admin page of a pod's proxy: a port-forward to its admin port,
which listens on the pod's loopback only. The pod is NAME, or the first
running pod of a deployment, statefulset, daemonset, replicaset, job or
service (TYPE/NAME), in NAMESPACE, else -n, else the kubeconfig's namespace;
or the first running pod --selector matches.`,
		Example: `  mesh dashboard envoy productpage-v1-7d9f8.bookinfo
  mesh dashboard envoy deployment/productpage-v1 -n bookinfo
  mesh dashboard envoy -l app=ratings -n bookinfo --browser=false`,
		Args: cobra.MaximumNArgs(1),
		RunE: cmdutil.Run(o),
	}
	cmd.Flags().IntVar(&o.UIPort, "ui-port", dashboard.ProxyAdminPort, "the proxy's admin port in the pod")
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "label selector of the pod (instead of naming it)")
	return cmd
}

func newControlzCommand(ctx *cli.Context, c *common) *cobra.Command {
	o := &Options{Context: ctx, common: c, Kind: "controlz"}
	cmd := &cobra.Command{
		Use:   "controlz [TYPE/]NAME[.NAMESPACE]",
		Short: "Open a mesh-pilot replica's debug page (port 15014)",
		Long: `Open a mesh-pilot replica's introspection page. mesh-pilot has no ControlZ
server (istiod's, port 9876): this opens its debug server (port 15014: the
proxies it serves, what it sent them, its metrics, its rollouts). The pod is
named as for envoy, in -n or mesh-system; or -l selects it.`,
		Example: `  mesh dashboard controlz deployment/mesh-pilot
  mesh dashboard controlz -l app=mesh-pilot --browser=false`,
		Args: cobra.MaximumNArgs(1),
		RunE: cmdutil.Run(o),
	}
	cmd.Flags().IntVar(&o.UIPort, "ctrlz_port", dashboard.PilotDebugPort, "pilot's debug port in the pod (istioctl's flag; its ControlZ port is 9876)")
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "label selector of the pod (instead of naming it)")
	return cmd
}

// Complete resolves the namespace and the pod argument.
func (o *Options) Complete(_ *cobra.Command, args []string) error {
	ns, explicit, err := o.Namespace()
	if err != nil {
		return err
	}
	switch {
	case o.Kind == "envoy", explicit:
		o.namespace = ns
	default:
		o.namespace = meshNamespace
	}
	if len(args) == 1 {
		o.ref = args[0]
	}
	return nil
}

// Validate checks the flags before anything touches the cluster.
func (o *Options) Validate() error {
	if o.common.Address != "localhost" && net.ParseIP(o.common.Address) == nil {
		return cli.Usagef("--address %q: expected an IP address or localhost", o.common.Address)
	}
	if o.common.Port < 0 || o.common.Port > 65535 {
		return cli.Usagef("--port %d: expected a port between 0 (a free one) and 65535", o.common.Port)
	}
	if o.UIPort < 1 || o.UIPort > 65535 {
		name := "--ui-port"
		if o.Kind == "controlz" {
			name = "--ctrlz_port"
		}
		return cli.Usagef("%s %d: expected a port between 1 and 65535", name, o.UIPort)
	}
	if o.Kind == "envoy" || o.Kind == "controlz" {
		switch {
		case o.ref == "" && o.Selector == "":
			hint := "-l app=ratings"
			if o.Kind == "controlz" {
				hint = "-l app=mesh-pilot"
			}
			return cli.Usagef("name a pod ([TYPE/]NAME[.NAMESPACE]) or give --selector, e.g. %s", hint)
		case o.ref != "" && o.Selector != "":
			return cli.Usagef("give a pod name or --selector, not both")
		}
		if o.ref != "" {
			if _, _, _, err := dashboard.ParseRef(o.ref); err != nil {
				return cli.Usage(err)
			}
		}
		if _, err := labels.Parse(o.Selector); err != nil {
			return cli.Usagef("--selector %q: %v", o.Selector, err)
		}
	}
	return nil
}

// Run finds the pod, opens the forward, prints the URL, opens the browser
// and waits for Ctrl-C or the end of the forward.
func (o *Options) Run(ctx context.Context) error {
	ctx, stop := cmdutil.SignalContext(ctx)
	defer stop()
	cfg, err := o.RESTConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cs, err := o.KubeClient()
	if err != nil {
		return err
	}
	t, err := o.target(ctx, cs)
	if err != nil {
		var u *dashboard.UsageError
		if errors.As(err, &u) {
			return cli.Usage(err)
		}
		return err
	}
	fw, err := dashboard.Open(ctx, cfg, t, o.common.Address, o.common.Port, o.ErrOut)
	if err != nil {
		return err
	}
	defer fw.Close()
	fmt.Fprintln(o.Out, fw.URL)
	if o.common.Browser {
		if err := o.browser.Open(fw.URL); err != nil {
			fmt.Fprintf(o.ErrOut, "Could not open a browser (%v): open %s in yours.\n", err, fw.URL)
		}
	}
	fmt.Fprintf(o.ErrOut, "Forwarding to %s (pod %s/%s, port %d); Ctrl-C to stop.\n", t.Title, t.Namespace, t.Pod, t.Port)
	select {
	case <-ctx.Done():
		return nil
	case <-fw.Done():
		if err := fw.Err(); err != nil {
			return fmt.Errorf("port-forward to %s ended: %w", t.Title, err)
		}
		return fmt.Errorf("port-forward to %s ended: the connection to pod %s/%s was closed", t.Title, t.Namespace, t.Pod)
	}
}

func (o *Options) target(ctx context.Context, cs kubernetes.Interface) (dashboard.Target, error) {
	switch o.Kind {
	case "envoy", "controlz":
		p, warn, err := dashboard.FindPod(ctx, cs, o.namespace, o.ref, o.Selector)
		if err != nil {
			return dashboard.Target{}, err
		}
		if warn != "" {
			cmdutil.PrintWarnings(o.Context, []string{warn})
		}
		title := "proxy " + p.Name + "." + p.Namespace
		if o.Kind == "controlz" {
			title = "mesh-pilot " + p.Name + "." + p.Namespace
		}
		return dashboard.Target{Title: title, Namespace: p.Namespace, Pod: p.Name, Port: o.UIPort}, nil
	}
	return dashboard.FindAddon(ctx, cs, o.namespace, o.addon, o.UIPort)
}
