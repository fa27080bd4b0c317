package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"mesh.dev/mesh/internal/proxy/appprobe"
	"mesh.dev/mesh/internal/proxy/bootstrap"
	"mesh.dev/mesh/internal/proxy/capture"
	"mesh.dev/mesh/internal/proxy/dnsproxy"
	"mesh.dev/mesh/internal/version"

	"mesh.dev/mesh/internal/proxy/identity"
	"mesh.dev/mesh/internal/proxy/logging"
	"mesh.dev/mesh/internal/proxy/metricsmerge"
	"mesh.dev/mesh/internal/proxy/peermeta"
)

// The agent's named loggers (see package logging).
var (
	mainLog   = logging.Default.Logger("main")
	configLog = logging.Default.Logger("config")
)

// Exit codes of mesh-proxy, matching the mesh CLI's.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 64
	exitData  = 65
)

// Main is mesh-proxy's entry point; it returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "version" {
		printVersion(stdout)
		return exitOK
	}
	if len(args) > 0 && args[0] == "init" {
		return initMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "wait" {
		return waitMain(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("mesh-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		bootstrapPath string
		nodeID        string
		logLevel      string
	)
	// Envoy's command line, so mesh-proxy runs where envoy is run; the earlier names stay as aliases.
	fs.StringVar(&bootstrapPath, "config-path", "", "Envoy v3 bootstrap file (YAML or JSON): node, static_resources, dynamic_resources.ads_config, admin, layered_runtime (Envoy's -c)")
	fs.StringVar(&bootstrapPath, "c", "", "shorthand for --config-path")
	fs.StringVar(&bootstrapPath, "bootstrap", "", "same as --config-path")
	configYAML := fs.String("config-yaml", "", "bootstrap YAML merged over --config-path's (or the whole bootstrap without it), as protobuf merges: scalars replace, lists append")
	mode := fs.String("mode", "serve", "serve, or validate: parse and compile the bootstrap, print whether it is OK, and exit (0 OK, 65 invalid)")
	xdsAddr := fs.String("xds-address", "", "ADS server host:port (overrides the bootstrap's ads_config)")
	delta := fs.Bool("delta", false, "use incremental (delta) xDS instead of state-of-the-world")
	adminAddr := fs.String("admin-address", "127.0.0.1:15000", "Envoy-compatible admin API address (empty disables); when not given, the bootstrap's admin.address is used if it has one")
	healthAddr := fs.String("health-address", "0.0.0.0:15021", "readiness address serving /healthz/ready (empty disables)")
	statsAddr := fs.String("stats-address", "0.0.0.0:15020", "the agent's status port: /stats/prometheus (the proxy's metrics merged with the app's, per "+metricsmerge.EnvVar+"), /app-health, /quitquitquit (empty disables)")
	promAddr := fs.String("prometheus-address", "", "address serving the proxy's own metrics at /stats/prometheus, Envoy's stats and Istio's metrics (Istio's 15090; the injector sets 0.0.0.0:15090; empty disables)")
	fs.StringVar(&nodeID, "service-node", "", "xDS node id (Envoy's flag; overrides the bootstrap's node.id); default built from INSTANCE_IP (or POD_IP), POD_NAME and POD_NAMESPACE")
	fs.StringVar(&nodeID, "node-id", "", "same as --service-node")
	cluster := fs.String("service-cluster", "", "xDS node cluster (overrides the bootstrap's node.cluster)")
	zone := fs.String("service-zone", "", "xDS node locality zone (overrides the bootstrap's node.locality.zone)")
	fs.StringVar(&logLevel, "log-level", "info", "level of every logger: trace, debug, info, warning, error, critical or off")
	fs.StringVar(&logLevel, "l", "info", "shorthand for --log-level")
	compLevels := fs.String("component-log-level", "", "per-logger levels, LOGGER:LEVEL[,LOGGER:LEVEL...] (e.g. upstream:debug,connection:trace); applied after --log-level")
	drain := fs.Duration("drain-timeout", 20*time.Second, "how long SIGTERM waits for in-flight requests")
	drainSecs := fs.Int("drain-time-s", -1, "Envoy's name for --drain-timeout, in seconds (wins when both are given)")
	parentShutdown := fs.Int("parent-shutdown-time-s", -1, "hard limit in seconds on the whole shutdown after SIGTERM; at least --drain-time-s (mesh-proxy has no hot restart, so no parent process waits on it)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	caAddr := fs.String("ca-address", "", "mesh-pilot's certificate service host:port (its mTLS port 15012); empty: no workload certificate of the agent's own")
	caRoot := fs.String("ca-root-cert", "/var/run/secrets/istio/root-cert.pem", "PEM mesh root that pilot's serving certificate chains to (the istio-ca-root-cert ConfigMap)")
	caName := fs.String("ca-server-name", "", "name to verify pilot's serving certificate against (default: the host of --ca-address)")
	saToken := fs.String("sa-token", "/var/run/secrets/tokens/istio-token", "projected ServiceAccount token file presented to the CA")
	certTTL := fs.Duration("workload-cert-ttl", 24*time.Hour, "validity to ask the CA for; the certificate is renewed at half its life")
	xdsMTLS := fs.Bool("xds-mtls", false, "connect to --xds-address over TLS, verifying pilot with --ca-root-cert and presenting the workload certificate (needs --ca-address)")
	concurrency := fs.Int("concurrency", 0, "threads running Go code (GOMAXPROCS), as Envoy's --concurrency sets worker threads; 0: one per CPU. A sidecar is usually given 1 or 2 (GOMAXPROCS wins when set)")
	memLimit := fs.Int64("memory-limit-mib", 0, "soft heap limit in MiB the garbage collector aims under (0: Go's default; GOMEMLIMIT wins when set)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *showVersion {
		printVersion(stdout)
		return exitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mesh-proxy: unexpected argument %q (subcommands: init, wait, version)\n", fs.Arg(0))
		return exitUsage
	}
	if *mode != "serve" && *mode != "validate" {
		fmt.Fprintf(stderr, "mesh-proxy: --mode %q: want serve or validate (init_only is not supported)\n", *mode)
		return exitUsage
	}
	if *concurrency < 0 {
		fmt.Fprintf(stderr, "mesh-proxy: --concurrency %d: want 0 (one per CPU) or more\n", *concurrency)
		return exitUsage
	}
	if set["drain-time-s"] {
		if *drainSecs < 0 {
			fmt.Fprintf(stderr, "mesh-proxy: --drain-time-s %d: want 0 or more seconds\n", *drainSecs)
			return exitUsage
		}
		*drain = time.Duration(*drainSecs) * time.Second
	}
	var hardStop time.Duration
	if set["parent-shutdown-time-s"] {
		hardStop = time.Duration(*parentShutdown) * time.Second
		if *parentShutdown < 0 || hardStop < *drain {
			fmt.Fprintf(stderr, "mesh-proxy: --parent-shutdown-time-s %d: want at least the drain time (%v)\n", *parentShutdown, *drain)
			return exitUsage
		}
	}
	if *concurrency > 0 && os.Getenv("GOMAXPROCS") == "" {
		// Fewer Ps also means fewer threads spinning for work between requests: less CPU per request on an idle-ish node.
		runtime.GOMAXPROCS(*concurrency)
	}
	if *memLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A sidecar's footprint is multiplied by every pod; trade a little GC CPU for RSS near the limit.
		debug.SetMemoryLimit(*memLimit << 20)
	}
	loggers := logging.Default
	if err := setLogLevels(loggers, logLevel, *compLevels); err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: %v\n", err)
		return exitUsage
	}
	// The output lets everything through: each named logger filters at its own level.
	loggers.SetOutput(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug - 4, ReplaceAttr: logging.ReplaceLevelNames}))
	slog.SetDefault(loggers.Logger("misc"))
	opts := Options{XDSAddress: *xdsAddr, Delta: *delta, AdminAddress: *adminAddr, HealthAddress: *healthAddr, StatsAddress: *statsAddr, PrometheusAddress: *promAddr,
		NodeID: nodeID, Cluster: *cluster, Zone: *zone, DrainTimeout: *drain, ValidateOnly: *mode == "validate"}
	if bootstrapPath != "" || *configYAML != "" {
		b, err := bootstrap.LoadWith(bootstrapPath, *configYAML)
		if err != nil {
			fmt.Fprintf(stderr, "mesh-proxy: %v\n", err)
			return exitData
		}
		opts.Bootstrap = b
		a, err := bootstrap.AdminAddress(b)
		if err != nil {
			fmt.Fprintf(stderr, "mesh-proxy: bootstrap: %v\n", err)
			return exitData
		}
		if a != "" && !set["admin-address"] {
			opts.AdminAddress = a // the flag, when given, still wins
		}
	}
	if opts.ValidateOnly {
		return validate(opts, bootstrapPath, stdout, stderr)
	}
	probers, err := appprobe.Parse(os.Getenv(appprobe.EnvVar))
	if err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: environment %v (written by the injector from the pod's probes: re-inject the pod)\n", err)
		return exitData
	}
	opts.AppProbers, opts.AppProbeHost = probers, appProbeHost()
	if opts.AppMetrics, err = metricsmerge.Parse(os.Getenv(metricsmerge.EnvVar)); err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: environment %v (written by the injector from the pod's prometheus.io annotations: re-inject the pod)\n", err)
		return exitData
	}
	if opts.NodeID == "" && opts.Bootstrap.GetNode().GetId() == "" {
		ip := os.Getenv("INSTANCE_IP")
		if ip == "" {
			ip = os.Getenv("POD_IP")
		}
		id, err := NodeID(ip, os.Getenv("POD_NAME"), os.Getenv("POD_NAMESPACE"))
		if err != nil {
			fmt.Fprintf(stderr, "mesh-proxy: %v\n", err)
			return exitUsage
		}
		opts.NodeID = id
	}
	if opts.NodeID != "" {
		if _, _, podNS, _, err := ParseNodeID(opts.NodeID); err == nil {
			pod, ns, _ := strings.Cut(podNS, ".")
			opts.Workload = Workload{Name: workloadName(pod), Namespace: ns, App: os.Getenv("SERVICE_NAME"), Version: os.Getenv("SERVICE_VERSION")}
		}
	}
	if os.Getenv("ISTIO_META_WORKLOAD_NAME") != "" || os.Getenv("ISTIO_METAJSON_LABELS") != "" {
		// The injector's node metadata, told to peers (Istio's metadata exchange).
		n, err := peermeta.FromEnv(os.Getenv)
		if err != nil {
			fmt.Fprintf(stderr, "mesh-proxy: %v (written by the injector: re-inject the pod)\n", err)
			return exitData
		}
		opts.Peer = n
	}
	if opts.NodeMetadata, err = NodeMetadataFromEnv(os.Environ()); err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: %v\n", err)
		return exitData
	}
	if opts.DNS, err = dnsFromEnv(os.Getenv, resolvConf, opts.Workload.Namespace); err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: %v\n", err)
		return exitUsage
	}
	if *xdsMTLS && *caAddr == "" {
		fmt.Fprintln(stderr, "mesh-proxy: --xds-mtls needs --ca-address: the client certificate comes from pilot's CA")
		return exitUsage
	}
	if *caAddr != "" {
		if *certTTL < time.Minute {
			fmt.Fprintf(stderr, "mesh-proxy: --workload-cert-ttl %v: want at least 1m\n", *certTTL)
			return exitUsage
		}
		id, err := identity.New(identity.Config{CAAddress: *caAddr, ServerName: *caName, RootCertFile: *caRoot, TokenFile: *saToken, TTL: *certTTL,
			Log: logging.Default.Logger("secret")})
		if err != nil {
			fmt.Fprintf(stderr, "mesh-proxy: --ca-address %s: %v (flags --ca-root-cert, --sa-token)\n", *caAddr, err)
			return exitData
		}
		defer id.Close()
		opts.Identity, opts.XDSMTLS = id, *xdsMTLS
	}
	p, err := New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: %v\n", err)
		return exitData
	}
	term, err := terminationFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := p.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: %v\n", err)
		return exitError
	}
	mainLog.Info("mesh-proxy started", "node", p.node.GetId(), "admin", p.AdminAddr(), "xds", opts.XDSAddress)
	quit := false
	select {
	case <-ctx.Done():
		mainLog.Info("terminating: inbound drains, outbound stays open for the app", "terminationDrainDuration", term.Drain,
			"exitOnZeroActiveConnections", term.ExitOnZero)
	case <-p.Quit():
		mainLog.Info("quit requested (/quitquitquit)")
		quit = true
	}
	dctx := context.Background()
	if hardStop > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(dctx, hardStop)
		defer cancel()
	}
	if quit {
		p.Drain(dctx)
	} else {
		p.Terminate(dctx, term)
	}
	return exitOK
}

// validate is --mode validate: build the proxy from the bootstrap (every
// static listener, cluster and secret compiled, nothing bound or dialled) and
// say whether it is OK, as Envoy's validation mode does.
func validate(opts Options, path string, stdout, stderr io.Writer) int {
	if opts.NodeID == "" && opts.Bootstrap.GetNode().GetId() == "" {
		opts.NodeID = "mesh-proxy-validate" // the node id matters only to xDS, which validation does not reach
	}
	name := path
	if name == "" {
		name = "--config-yaml"
	}
	p, err := New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "mesh-proxy: configuration '%s': %v\n", name, err)
		return exitData
	}
	p.Close()
	fmt.Fprintf(stdout, "configuration '%s' OK\n", name)
	return exitOK
}

// appProbeHost is where rewritten probes reach the app: the pod IP, as the
// kubelet would have probed it (an app listening on the pod IP only is
// reached), or localhost where Istio's legacy switch asks for it.
func appProbeHost() string {
	if os.Getenv(appprobe.LegacyLocalhostEnv) == "true" {
		return "localhost"
	}
	for _, k := range []string{"INSTANCE_IP", "POD_IP"} {
		if ip := os.Getenv(k); ip != "" {
			return ip
		}
	}
	return "localhost"
}

// workloadName drops the ReplicaSet and pod hashes from a pod name, as Istio's workload label does.
func workloadName(pod string) string {
	parts := strings.Split(pod, "-")
	if len(parts) >= 3 {
		return strings.Join(parts[:len(parts)-2], "-")
	}
	return pod
}

func printVersion(w io.Writer) {
	v := version.Get()
	fmt.Fprintf(w, "mesh-proxy %s (commit %s, built %s, %s %s)\n", v.Version, v.GitCommit, v.BuildDate, v.GoVersion, v.Platform)
}

// initMain is `mesh-proxy init`: write the capture rules into the current network namespace.
func initMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mesh-proxy init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := capture.Default()
	fs.IntVar(&c.ProxyUID, "proxy-uid", c.ProxyUID, "uid the proxy runs as; its traffic is not captured")
	fs.IntVar(&c.ProxyGID, "proxy-gid", c.ProxyGID, "gid the proxy runs as; its traffic is not captured")
	fs.IntVar(&c.OutboundPort, "outbound-port", c.OutboundPort, "port outbound TCP is redirected to")
	fs.IntVar(&c.InboundPort, "inbound-port", c.InboundPort, "port inbound TCP is redirected to")
	fs.StringVar(&c.InboundPorts, "inbound-ports", c.InboundPorts, `inbound ports to capture: "*" for all, a comma list, or "" for none`)
	exclude := fs.String("exclude-inbound-ports", "15020,15021,15090", "inbound ports never captured (comma list)")
	includeCIDR := fs.String("include-outbound-ip-ranges", "*", `outbound destinations captured: "*" for all, a comma list of CIDRs, or "" for none (Istio's -i)`)
	excludeCIDR := fs.String("exclude-outbound-ip-ranges", "", "outbound destinations never captured, comma list of CIDRs (Istio's -x)")
	includeOut := fs.String("include-outbound-ports", "", "outbound ports always captured, whatever the destination (Istio's -q)")
	excludeOut := fs.String("exclude-outbound-ports", "", "outbound ports never captured (Istio's -o)")
	fs.BoolVar(&c.RedirectDNS, "redirect-dns", false, "redirect the app's DNS (UDP and TCP 53) to the proxy's DNS server; for the nameservers of --resolv-conf only (Istio's --redirect-dns)")
	fs.IntVar(&c.DNSPort, "dns-port", c.DNSPort, "with --redirect-dns: the port of the proxy's DNS server")
	resolv := fs.String("resolv-conf", resolvConf, `with --redirect-dns: the pod's resolv.conf, whose IPv4 nameservers are captured ("" or none readable: DNS to any destination)`)
	dry := fs.Bool("dry-run", false, "print the iptables-restore input instead of applying it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	bad := func(flag string, err error) bool {
		if err != nil {
			fmt.Fprintf(stderr, "mesh-proxy init: --%s: %v\n", flag, err)
		}
		return err != nil
	}
	var err error
	if c.ExcludeInboundPorts, err = capture.ParsePorts(*exclude); bad("exclude-inbound-ports", err) {
		return exitUsage
	}
	if c.IncludeOutboundCIDR, err = capture.ParseCIDRs(*includeCIDR); bad("include-outbound-ip-ranges", err) {
		return exitUsage
	}
	if c.ExcludeOutboundCIDR, err = capture.ParseCIDRs(*excludeCIDR); bad("exclude-outbound-ip-ranges", err) {
		return exitUsage
	}
	if c.IncludeOutboundPorts, err = capture.ParsePorts(*includeOut); bad("include-outbound-ports", err) {
		return exitUsage
	}
	if c.ExcludeOutboundPorts, err = capture.ParsePorts(*excludeOut); bad("exclude-outbound-ports", err) {
		return exitUsage
	}
	if c.RedirectDNS && *resolv != "" {
		rc, err := dnsproxy.ReadResolvConf(*resolv)
		if err != nil {
			fmt.Fprintf(stderr, "mesh-proxy init: --resolv-conf: %v; capturing DNS to every destination\n", err)
		}
		for _, n := range rc.Nameservers {
			if a, err := netip.ParseAddr(n); err == nil && a.Is4() {
				c.DNSServers = append(c.DNSServers, a.String())
			}
		}
	}
	if err := c.Validate(); err != nil {
		fmt.Fprintf(stderr, "mesh-proxy init: %v\n", err)
		return exitUsage
	}
	if *dry {
		io.WriteString(stdout, c.Rules())
		return exitOK
	}
	if err := c.Apply(context.Background()); err != nil {
		fmt.Fprintf(stderr, "mesh-proxy init: %v\n", err)
		return exitError
	}
	return exitOK
}

// setLogLevels applies --log-level to every logger, then --component-log-level's pairs.
func setLogLevels(reg *logging.Registry, all, components string) error {
	l, err := logging.ParseLevel(all)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	reg.SetAll(l)
	if strings.TrimSpace(components) == "" {
		return nil
	}
	for _, part := range strings.Split(components, ",") {
		name, lvl, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return fmt.Errorf("--component-log-level %q: %q is not LOGGER:LEVEL", components, part)
		}
		l, err := logging.ParseLevel(lvl)
		if err != nil {
			return fmt.Errorf("--component-log-level %q: logger %s: %w", components, name, err)
		}
		if err := reg.Set(name, l); err != nil {
			return fmt.Errorf("--component-log-level %q: %w", components, err)
		}
	}
	return nil
}
