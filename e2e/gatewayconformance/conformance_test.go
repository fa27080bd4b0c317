// Package gatewayconformance runs the Kubernetes Gateway API's own
// conformance suite (sigs.k8s.io/gateway-api/conformance, the version of
// the CRDs mesh ships) against mesh on the sandbox: the real API server,
// mesh installed with its CLI, pilot, the gateway proxies pilot deploys and
// the suite's echo-basic backends as real processes on the sandbox runtime.
package gatewayconformance

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1alpha3"
	xv1alpha1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/roundtripper"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/runtime"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// echoBinary is the suite's echo server (its module's echo-basic, built
// into bin/ by make build): the runtime runs it for the suite's
// registry.k8s.io/gateway-api/echo-basic images.
const echoBinary = "echo-basic"

func TestMain(m *testing.M) {
	if skip = whyNot(); skip != "" {
		os.Exit(m.Run())
	}
	sandboxtest.Main(m)
}

var skip string

// whyNot is why the suite cannot run on this machine, "" when it can.
func whyNot() string {
	if os.Getenv(sandbox.SkipEnv) == "skip" {
		return sandbox.SkipEnv + "=skip (make test-unit): no sandbox"
	}
	if err := runtime.CheckHost(); err != nil {
		return "the conformance suite runs pods in network namespaces: " + err.Error()
	}
	tools, err := sandbox.FindBinDir()
	if err != nil {
		return err.Error()
	}
	if _, err := os.Stat(filepath.Join(tools, "kube-apiserver")); err != nil {
		return "no sandbox binaries in " + tools + ": run `make tools` (make test does)"
	}
	root, err := sandbox.RepoRoot()
	if err != nil {
		return err.Error()
	}
	for _, b := range append([]string{"mesh", echoBinary}, runtime.Binaries...) {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			return "bin/" + b + " missing: run `make build` (make test does)"
		}
	}
	return ""
}

// TestGatewayAPIConformance runs the suite's tests listed in Tests (see
// that file for what runs, what is skipped and why) and writes the
// ConformanceReport to docs/conformance/ when MESH_CONFORMANCE_REPORT=1
// (make conformance-report).
func TestGatewayAPIConformance(t *testing.T) {
	if skip != "" {
		t.Skip(skip)
	}
	c := sandboxtest.Cluster(t)
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	o, err := runtime.ForCluster(c, bin)
	if err != nil {
		t.Fatal(err)
	}
	o.Images[echoBinary] = filepath.Join(bin, echoBinary)
	var runtimeLog string
	o.Logger, runtimeLog = sandboxtest.RuntimeLog(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	rt, err := runtime.Start(ctx, o)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			sandboxtest.Dump(t, kubernetes.NewForConfigOrDie(c.RESTConfig()), runtimeLog, rt.LogDir())
		}
		rt.Stop()
	})

	// The install a user makes, but with ClusterIP Services for the
	// Gateways: the sandbox has no load balancer to give a LoadBalancer an
	// address, and a Gateway is Programmed only once it has one.
	mesh(t, c, bin, 4*time.Minute, "install", "--set", "profile=default",
		"--set", "values.pilot.env.PILOT_GATEWAY_SERVICE_TYPE=ClusterIP", "-y", "--readiness-timeout", "120s")

	cfg := c.RESTConfig()
	log.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	cl, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, install := range []func(*apiruntime.Scheme) error{v1alpha3.Install, v1alpha2.Install, xv1alpha1.Install, gwv1.Install, apiextensionsv1.AddToScheme} {
		if err := install(cl.Scheme()); err != nil {
			t.Fatal(err)
		}
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	// The suite reads the features to test from the class's status, so
	// it starts once pilot has accepted the class and written them.
	var class gwv1.GatewayClass
	if err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, client.ObjectKey{Name: "mesh"}, &class); err != nil {
			return false, nil
		}
		return len(class.Status.SupportedFeatures) > 0, nil
	}); err != nil {
		t.Fatalf("GatewayClass mesh never listed its supportedFeatures: %+v", class.Status)
	}
	timeouts := config.DefaultTimeoutConfig()
	dialer := &serviceDialer{kube: cs}
	grpcc := &grpcClient{dialer: dialer}
	t.Cleanup(grpcc.Close)
	opts := suite.ConformanceOptions{
		ConfigurableOptions: suite.ConfigurableOptions{
			GatewayClassName:     "mesh",
			CleanupBaseResources: true,
			CleanupTestResources: true,
			Mode:                 "default",
			TimeoutConfig:        timeouts,
			SkipTests:            Skipped(),
			ConformanceProfiles:  Profiles,
			Implementation: confv1.Implementation{
				Organization: "mesh.dev",
				Project:      "mesh",
				URL:          "https://mesh.dev",
				Version:      meshVersion(root),
				Contact:      []string{"https://mesh.dev/issues"},
			},
		},
		Client:       cl,
		Clientset:    cs,
		RestConfig:   cfg,
		RoundTripper: &roundtripper.DefaultRoundTripper{TimeoutConfig: timeouts, CustomDialContext: dialer.DialContext},
		GRPCClient:   grpcc,
	}
	// MESH_CONFORMANCE_RUN=<test> runs one test (the suite then takes the
	// features from the options, not the class: they are copied here).
	if one := os.Getenv("MESH_CONFORMANCE_RUN"); one != "" {
		opts.RunTest = one
		for _, f := range class.Status.SupportedFeatures {
			opts.SupportedFeatures = append(opts.SupportedFeatures, features.FeatureName(f.Name))
		}
	}
	if os.Getenv("MESH_CONFORMANCE_REPORT") == "1" {
		opts.ReportOutputPath = filepath.Join(root, "docs", "conformance", "report.yaml")
	}
	conformance.RunConformanceWithOptions(t, opts)
}

// mesh runs the CLI against the sandbox as a user would, failing the test
// when it fails.
func mesh(t *testing.T, c *sandbox.Cluster, bin string, timeout time.Duration, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "mesh"), append(args, "--kubeconfig", c.KubeconfigPath())...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	t.Logf("$ mesh %s\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("mesh %s: %v", strings.Join(args, " "), err)
	}
}

// meshVersion names the build the report is of: the checkout's git
// description, as make build stamps into the binaries.
func meshVersion(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "0.0.0-dev"
}
