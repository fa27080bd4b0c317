// Package analyze holds `mesh analyze`.
package analyze

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/analyze/analyzers"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/resource"
	"mesh.dev/mesh/internal/version"
)

// probeTimeout bounds the check for a reachable cluster when --use-kube is
// not given.
const probeTimeout = 2 * time.Second

// Options are the flags of `mesh analyze`.
type Options struct {
	*cli.Context
	Paths            []string
	Recursive        bool
	UseKube          bool
	AllNamespaces    bool
	Output           *cli.Output
	FailureThreshold string
	OutputThreshold  string
	Suppress         []string
	ListAnalyzers    bool
	MeshConfigFile   string
	MeshNetworksFile string
	Timeout          time.Duration

	mesh         *analyze.Mesh
	useKubeSet   bool
	failLevel    analyze.Level
	outLevel     analyze.Level
	suppressions []analyze.Suppression
	cluster      *rest.Config
	namespace    string
	namespaceSet bool
}

// NewCommand builds `mesh analyze`.
func NewCommand(ctx *cli.Context) *cobra.Command {
	o := &Options{Context: ctx, Output: cli.NewOutput(analyze.FormatLog, analyze.Formats...)}
	cmd := &cobra.Command{
		Use:   "analyze [FILE|DIR|-]...",
		Short: "Find mistakes in mesh configuration, in files and in the cluster",
		Long: `Analyze reads Istio configuration (VirtualService, DestinationRule, Gateway,
ServiceEntry, Sidecar, WorkloadEntry, PeerAuthentication, AuthorizationPolicy,
RequestAuthentication, Telemetry), the Kubernetes Gateway API (GatewayClass,
Gateway, HTTPRoute, GRPCRoute, ReferenceGrant and their CRDs; kinds the mesh
does not read, such as EnvoyFilter, are reported as such) and the Kubernetes
objects they point at, from files,
directories (-R to descend), standard input ("-") and the cluster, and reports
problems with Istio's message codes (IST....) and mesh's own (MSH....).

With files and a reachable cluster, the files are analysed as if applied over
the cluster's objects. --use-kube defaults to true only when a cluster
answers; --use-kube=false never touches the network.

--meshConfigFile and --meshNetworksFile give the mesh-wide configuration, as
for istioctl analyze.

Exit codes: 0 no messages at or above --failure-threshold, 79 some, 65 input
that cannot be parsed, 64 bad flags.`,
		Example: `  # Check configuration in CI, before it reaches a cluster
  mesh analyze --use-kube=false -R deploy/

  # Check the live cluster, all namespaces, as SARIF for code scanning
  mesh analyze -A -o sarif > analyze.sarif

  # Silence one finding
  mesh analyze -S "IST0102=Namespace legacy" -A`,
		RunE: cmdutil.Run(o),
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Recursive, "recursive", "R", false, "descend into subdirectories of directory arguments")
	f.BoolVarP(&o.UseKube, "use-kube", "k", true, "read the cluster too (default: true when a cluster is reachable); false never touches the network")
	f.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "report on every namespace")
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	f.StringVar(&o.FailureThreshold, "failure-threshold", "Error", "exit 79 when a message is at this level or above (Info, Warning, Error)")
	f.StringVar(&o.OutputThreshold, "output-threshold", "Info", "print messages at this level or above (Info, Warning, Error)")
	f.StringArrayVarP(&o.Suppress, "suppress", "S", nil, `suppress a message: "CODE=Kind name.namespace" (globs allowed, e.g. "IST0103=Pod *.default"); repeatable`)
	f.BoolVarP(&o.ListAnalyzers, "list-analyzers", "L", false, "list the analyzers and their message codes, then exit")
	f.StringVar(&o.MeshConfigFile, "meshConfigFile", "", "analyse under this MeshConfig (YAML or JSON; e.g. its rootNamespace) instead of the defaults")
	f.StringVar(&o.MeshNetworksFile, "meshNetworksFile", "", "analyse under this MeshNetworks (YAML or JSON) and check its service registries")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "give up when reading and analysing take longer than this")
	return cmd
}

// Complete parses thresholds and suppressions and decides whether to use
// the cluster.
func (o *Options) Complete(cmd *cobra.Command, args []string) error {
	o.Paths = args
	o.useKubeSet = cmd.Flags().Changed("use-kube")
	var err error
	if o.failLevel, err = analyze.ParseLevel(o.FailureThreshold); err != nil {
		return cli.Usagef("--failure-threshold: %v", err)
	}
	if o.outLevel, err = analyze.ParseLevel(o.OutputThreshold); err != nil {
		return cli.Usagef("--output-threshold: %v", err)
	}
	for _, s := range o.Suppress {
		sup, err := analyze.ParseSuppression(s)
		if err != nil {
			return cli.Usagef("-S: %v", err)
		}
		o.suppressions = append(o.suppressions, sup)
	}
	if o.ListAnalyzers {
		return nil
	}
	o.mesh = analyze.DefaultMesh()
	if o.MeshConfigFile != "" {
		if err := o.mesh.LoadConfig(o.MeshConfigFile); err != nil {
			return meshFileError("--meshConfigFile", err)
		}
	}
	if o.MeshNetworksFile != "" {
		if err := o.mesh.LoadNetworks(o.MeshNetworksFile); err != nil {
			return meshFileError("--meshNetworksFile", err)
		}
	}
	if ns := o.ConfigFlags.Namespace; ns != nil && *ns != "" {
		o.namespace, o.namespaceSet = *ns, true
	}
	if o.useKubeSet && !o.UseKube {
		return nil // offline: no kubeconfig, no probe
	}
	cfg, err := o.RESTConfig()
	if err != nil {
		if o.useKubeSet {
			return fmt.Errorf("--use-kube: load cluster configuration: %w", err)
		}
		slog.Debug("no cluster configuration; analysing files only", "err", err)
		return nil
	}
	if !o.useKubeSet && !analyze.Reachable(cfg, probeTimeout) {
		slog.Debug("cluster not reachable; analysing files only", "host", cfg.Host)
		return nil
	}
	o.cluster = cfg
	if !o.namespaceSet {
		if ns, _, err := o.Namespace(); err == nil && ns != "" {
			o.namespace = ns
		}
	}
	return nil
}

// Validate checks the output format and that there is something to analyse.
func (o *Options) Validate() error {
	if o.ListAnalyzers {
		if f := o.Output.Format(); f != analyze.FormatLog && !o.Output.IsStructured() {
			return cli.Usagef("-o %s: --list-analyzers prints log, json or yaml", f)
		}
		return nil
	}
	if o.Timeout <= 0 {
		return cli.Usagef("--timeout must be positive, e.g. 30s")
	}
	if o.AllNamespaces && o.namespaceSet {
		return cli.Usagef("-A and -n cannot be used together")
	}
	if len(o.Paths) == 0 && o.cluster == nil {
		return cli.Usagef("nothing to analyze: give files or directories (or - for standard input), or point --kubeconfig at a reachable cluster")
	}
	stdin := 0
	for _, p := range o.Paths {
		if p == resource.StdinName {
			stdin++
		}
	}
	if stdin > 1 {
		return cli.Usagef("standard input (-) can be given only once")
	}
	return nil
}

// Run analyses, prints the messages and returns a FindingsError when some
// are at or above the failure threshold.
func (o *Options) Run(ctx context.Context) error {
	all := analyzers.All()
	if o.ListAnalyzers {
		return printAnalyzers(o, all)
	}
	tuneGC()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	filter := analyze.Filter{Suppressions: o.suppressions}
	switch {
	case o.AllNamespaces:
	case o.namespaceSet || o.cluster != nil:
		ns := o.namespace
		if ns == "" {
			ns = "default"
		}
		filter.Namespaces = map[string]bool{ns: true}
	}
	res, err := analyze.Analyze(ctx, analyze.Request{
		Paths: o.Paths, Recursive: o.Recursive, Stdin: o.In, Cluster: o.cluster,
		DefaultNamespace: o.namespace, Filter: filter, Analyzers: all, Mesh: o.mesh,
	})
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("analysis did not finish within --timeout %s: %w", o.Timeout, err)
	}
	if err != nil {
		var pe *resource.ParseError
		if errors.As(err, &pe) {
			return cli.Data(err)
		}
		if o.cluster == nil {
			return cli.Usage(err) // a path that cannot be read
		}
		return err
	}
	shown := analyze.AtLeast(res.Messages, o.outLevel)
	if err := analyze.Write(o.Out, o.Output.Format(), shown, analyze.WriteOptions{
		Colors: o.Colors(), Scope: analyze.Describe(filter.Namespaces, len(o.Paths) > 0), ToolVersion: version.Version,
	}); err != nil {
		return err
	}
	if n := len(analyze.AtLeast(res.Messages, o.failLevel)); n > 0 {
		return &cli.FindingsError{Count: n}
	}
	return nil
}

// meshFileError is a mesh config file that cannot be used: bad data (65)
// when it cannot be parsed, bad usage (64) when it cannot be read.
func meshFileError(flag string, err error) error {
	var pe *resource.ParseError
	if errors.As(err, &pe) {
		return cli.Data(fmt.Errorf("%s: %w", flag, err))
	}
	return cli.Usagef("%s: %v", flag, err)
}

type analyzerInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Codes       []string `json:"codes"`
}

func printAnalyzers(o *Options, all []analyze.Analyzer) error {
	var infos []analyzerInfo
	for _, a := range all {
		md := a.Metadata()
		info := analyzerInfo{Name: md.Name, Description: md.Description}
		for _, c := range md.Codes {
			info.Codes = append(info.Codes, c.Code+" "+c.Name+" ("+c.Level.String()+")")
		}
		infos = append(infos, info)
	}
	if o.Output.IsStructured() {
		return cli.PrintStructured(o.Out, o.Output.Format(), infos)
	}
	t := cli.NewTable(o.Out)
	fmt.Fprintln(t, "ANALYZER\tCODES\tDESCRIPTION")
	for _, a := range all {
		md := a.Metadata()
		var codes []string
		for _, c := range md.Codes {
			codes = append(codes, c.Code)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\n", md.Name, strings.Join(codes, ","), md.Description)
	}
	return t.Flush()
}
