// Command mesh-pilot is the mesh control plane.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/internal/credential"
	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/rollout/annotation"
	"mesh.dev/mesh/internal/version"
)

func main() {
	if err := newCommand(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "mesh-pilot:", err)
		os.Exit(1)
	}
}

func newCommand(out, errOut io.Writer) *cobra.Command {
	o := &pilot.Options{}
	var logLevel string
	var showVersion bool
	var memLimitMiB int64
	var oldSecretNamespace string
	cmd := &cobra.Command{
		Use:           "mesh-pilot",
		Short:         "The mesh control plane: xDS, certificates, injection and validation",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return printVersion(out)
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			o.Log = slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: lvl}))
			if memLimitMiB < 0 {
				return fmt.Errorf("--memory-limit-mib %d: want 0 (none) or a positive number of MiB", memLimitMiB)
			}
			// GOMEMLIMIT, when set, is the operator's choice and wins.
			if memLimitMiB > 0 && os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(memLimitMiB << 20)
			}
			if err := o.RolloutDefault.Check(rolloutFlags); err != nil {
				return err
			}
			if oldSecretNamespace != "" {
				o.SecretNamespaces = append(o.SecretNamespaces, oldSecretNamespace)
			}
			if err := credential.CheckNamespaces("--gateway-secret-namespaces", o.SecretNamespaces); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return o.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig for running outside the cluster (default: in-cluster config)")
	f.StringVar(&o.Namespace, "namespace", "", "namespace pilot runs in and keeps its CA in (default $POD_NAMESPACE or mesh-system)")
	f.StringVar(&o.Revision, "revision", "", "control plane revision (default $REVISION or \"default\")")
	f.StringVar(&o.XDSAddr, "xds-address", ":15010", "plaintext xDS (ADS) address")
	f.StringVar(&o.SecureXDSAddr, "secure-xds-address", ":15012", "mTLS xDS and certificate service address")
	f.StringVar(&o.DebugAddr, "debug-address", ":15014", "debug and metrics HTTP address")
	f.StringVar(&o.WebhookAddr, "webhook-address", ":15017", "admission webhooks HTTPS address")
	f.StringVar(&o.MeshConfigFile, "mesh-config", "", "mesh config file (the `mesh` ConfigMap's key)")
	f.StringVar(&o.InjectorValuesFile, "injector-values", "", "injector values file (default: read the mesh-sidecar-injector ConfigMap)")
	f.DurationVar(&o.WorkloadCertTTL, "workload-cert-ttl", 0, "lifetime of workload certificates (default 24h)")
	f.StringSliceVar(&o.SecretNamespaces, "gateway-secret-namespaces", nil, "namespaces besides pilot's own where it always reads the kubernetes.io/tls and Opaque Secrets gateways use as credentialName or certificateRefs; it also reads them in each namespace where gateways are, binding ClusterRole mesh-pilot-gateway-secrets there; \"*\": every namespace, which needs RBAC to read Secrets cluster-wide (install value values.pilot.gatewaySecretNamespaces)")
	f.StringVar(&oldSecretNamespace, "gateway-secret-namespace", "", "one more namespace to read gateway Secrets in")
	_ = f.MarkDeprecated("gateway-secret-namespace", "use --gateway-secret-namespaces, a list")
	f.StringVar(&o.GatewayServiceType, "gateway-service-type", "", "type of the Services of the Gateway API Gateways pilot deploys: LoadBalancer, ClusterIP or NodePort (default $PILOT_GATEWAY_SERVICE_TYPE, else LoadBalancer as Istio; a Gateway's networking.istio.io/service-type annotation wins)")
	f.StringSliceVar(&o.ExtraHosts, "extra-host", nil, "extra host name or IP for pilot's serving certificate (e.g. 127.0.0.1 outside the cluster)")
	f.StringVar(&o.RolloutDefault.Stages, "rollout-stages", "", "mesh-wide default of the rollout.mesh.io/stages annotation, e.g. \"10,50,100\": config changes are released in these stages unless their resource says otherwise (default: none, a change goes out at once; docs/rollout.md)")
	f.StringVar(&o.RolloutDefault.Interval, "rollout-interval", "", "mesh-wide default of rollout.mesh.io/interval, e.g. \"60s\" (needed with --rollout-stages of more than one stage)")
	f.StringVar(&o.RolloutDefault.Max5xxRatio, "rollout-max-5xx-ratio", "", "mesh-wide default of rollout.mesh.io/max-5xx-ratio, e.g. \"0.02\"")
	f.StringVar(&o.RolloutDefault.MaxLatencyIncrease, "rollout-max-latency-increase", "", "mesh-wide default of rollout.mesh.io/max-latency-increase, e.g. \"1.5\"")
	f.StringVar(&o.JWKSFetchMode, "jwks-fetch-mode", "", "who fetches a RequestAuthentication's jwksUri, as Istio's PILOT_JWT_ENABLE_REMOTE_JWKS: istiod (pilot fetches and inlines the keys), hybrid (the proxy fetches from hosts that are mesh Services or ServiceEntries it sees, through their outbound cluster; pilot fetches the rest) or envoy (the proxy fetches every jwksUri) (default $PILOT_JWT_ENABLE_REMOTE_JWKS, else istiod)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.Int64Var(&memLimitMiB, "memory-limit-mib", pilot.DefaultMemoryLimitMiB, "soft memory limit in MiB: the garbage collector works harder near it (0: none; GOMEMLIMIT overrides)")
	f.BoolVar(&showVersion, "version", false, "print the version and exit")
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return printVersion(out) },
	})
	cmd.SetContext(context.Background())
	return cmd
}

func printVersion(out io.Writer) error {
	v := version.Get()
	_, err := fmt.Fprintf(out, "mesh-pilot %s (commit %s, %s, %s)\n", v.Version, v.GitCommit, v.GoVersion, v.Platform)
	return err
}

// rolloutFlags names the rollout annotations by the flags that set their
// mesh-wide default, for a bad default's error.
var rolloutFlags = map[string]string{
	annotation.Stages:             "--rollout-stages",
	annotation.Interval:           "--rollout-interval",
	annotation.Max5xxRatio:        "--rollout-max-5xx-ratio",
	annotation.MaxLatencyIncrease: "--rollout-max-latency-increase",
}
