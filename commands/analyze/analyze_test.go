package analyze

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// run executes `mesh analyze args...` in-process and returns stdout and the
// exit code cmd/mesh would use.
func run(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	ctx := cli.NewContext(streams)
	root := &cobra.Command{Use: "mesh", SilenceErrors: true, SilenceUsage: true}
	ctx.ConfigFlags.AddFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.Usage(err) })
	cmd := NewCommand(ctx)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cli.Usage(err) })
	root.AddCommand(cmd)
	root.SetArgs(append([]string{"analyze"}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	return out.String() + errText(err), exitCode(err)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "Error: " + err.Error() + "\n"
}

func exitCode(err error) int {
	var f *cli.FindingsError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &f):
		return cli.ExitFindings
	case cli.IsUsage(err):
		return cli.ExitUsage
	case cli.IsData(err):
		return cli.ExitData
	}
	return 1
}

func bookinfo(t *testing.T) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	p := filepath.Join(filepath.Dir(dir), "shared", "fixtures", "bookinfo")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("Bookinfo fixtures not found at %s", p)
	}
	return p
}

func TestBookinfoAnalysesClean(t *testing.T) {
	dir := bookinfo(t)
	out, code := run(t, "", "--use-kube=false", filepath.Join(dir, "bookinfo.yaml"), filepath.Join(dir, "networking"))
	if code != 0 || !strings.Contains(out, "No issues found") {
		t.Fatalf("exit %d, want 0 and no issues:\n%s", code, out)
	}
	out, code = run(t, "", "--use-kube=false", "-R", dir)
	if code != 0 {
		t.Fatalf("-R over the whole fixture: exit %d:\n%s", code, out)
	}
}

var hostRE = regexp.MustCompile(`(?m)^\s+host: (\S+)\n(\s+subset: (\S+))?`)

func TestBookinfoRulesWithoutServicesReportMissingHostsAndSubsets(t *testing.T) {
	dir := bookinfo(t)
	files, _ := filepath.Glob(filepath.Join(dir, "networking", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no routing rules found")
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		out, code := run(t, "", "--use-kube=false", f)
		if code != cli.ExitFindings && strings.Contains(string(data), "kind: VirtualService") {
			t.Errorf("%s: exit %d, want 79:\n%s", f, code, out)
		}
		for _, m := range hostRE.FindAllStringSubmatch(string(data), -1) {
			host, subset := m[1], m[3]
			if !strings.Contains(out, fmt.Sprintf("host not found: %q", host)) && !strings.Contains(out, fmt.Sprintf("The host %s defined in the DestinationRule does not match", host)) {
				t.Errorf("%s: missing host %q not reported:\n%s", filepath.Base(f), host, out)
			}
			if subset != "" && !strings.Contains(string(data), "kind: DestinationRule") && !strings.Contains(out, fmt.Sprintf("%q", host+"+"+subset)) {
				t.Errorf("%s: missing subset %s+%s not reported:\n%s", filepath.Base(f), host, subset, out)
			}
		}
	}
}

func TestGoldenOutputs(t *testing.T) {
	for _, format := range []string{"log", "json", "yaml", "sarif", "github"} {
		t.Run(format, func(t *testing.T) {
			out, code := run(t, "", "--use-kube=false", "-R", "testdata/broken", "-o", format)
			if code != cli.ExitFindings {
				t.Errorf("exit %d, want 79", code)
			}
			golden := filepath.Join("testdata", "golden", "broken."+format)
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, out)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), 0o644)
		return p
	}
	bad := write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Service\nmetadata: {name: [b\n")
	warnOnly := write("warn.yaml", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: d\nspec:\n  host: nowhere\n")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unparseable", []string{"--use-kube=false", bad}, 65, "bad.yaml:7"},
		{"missing kind", []string{"--use-kube=false", write("nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n")}, 65, "nokind.yaml:1: object has no kind"},
		{"warning below failure threshold", []string{"--use-kube=false", warnOnly}, 0, "IST0174"},
		{"warning at failure threshold", []string{"--use-kube=false", "--failure-threshold", "Warning", warnOnly}, 79, "IST0174"},
		{"output threshold hides", []string{"--use-kube=false", "--output-threshold", "Error", warnOnly}, 0, "No issues found"},
		{"suppressed by -S", []string{"--use-kube=false", "--failure-threshold", "Info", "-S", "IST0174=DestinationRule d.default", warnOnly}, 0, "No issues found"},
		{"suppressed by glob", []string{"--use-kube=false", "--failure-threshold", "Info", "-S", "IST*=DestinationRule *.default", warnOnly}, 0, "No issues found"},
		{"-S for another resource", []string{"--use-kube=false", "--failure-threshold", "Info", "-S", "IST0174=DestinationRule e.default", warnOnly}, 79, "IST0174"},
		{"-n places objects", []string{"--use-kube=false", "-n", "prod", warnOnly}, 0, "DestinationRule d.prod"},
		{"bad output", []string{"--use-kube=false", "-o", "xml", warnOnly}, 64, "unknown output format"},
		{"bad threshold", []string{"--use-kube=false", "--failure-threshold", "Severe", warnOnly}, 64, "--failure-threshold"},
		{"bad suppression", []string{"--use-kube=false", "-S", "IST0174", warnOnly}, 64, "CODE=Kind name.namespace"},
		{"nothing to analyze", []string{"--use-kube=false"}, 64, "nothing to analyze"},
		{"missing file", []string{"--use-kube=false", filepath.Join(dir, "nope.yaml")}, 64, "nope.yaml"},
		{"unknown flag", []string{"--use-kube=false", "--frobnicate", warnOnly}, 64, "frobnicate"},
		{"-A with -n", []string{"--use-kube=false", "-A", "-n", "x", warnOnly}, 64, "-A and -n"},
	}
	for _, c := range cases {
		out, code := run(t, "", c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", c.name, code, c.code, c.want, out)
		}
	}
}

func TestAnnotationSuppression(t *testing.T) {
	doc := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: d\n  annotations:\n    %s: %s\nspec:\n  host: nowhere\n"
	for _, c := range []struct {
		key, value string
		suppressed bool
	}{
		{"mesh.io/analyze-suppress", "IST0174", true},
		{"galley.istio.io/analyze-suppress", "IST0101,IST0174", true},
		{"mesh.io/analyze-suppress", `"*"`, true},
		{"mesh.io/analyze-suppress", "IST0101", false},
	} {
		out, _ := run(t, fmt.Sprintf(doc, c.key, c.value), "--use-kube=false", "-")
		if got := !strings.Contains(out, "IST0174"); got != c.suppressed {
			t.Errorf("%s=%s: suppressed=%v, want %v:\n%s", c.key, c.value, got, c.suppressed, out)
		}
	}
}

func TestStdinAndJSONList(t *testing.T) {
	in := `{"apiVersion":"v1","kind":"List","items":[
{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"a"},"spec":{"host":"x"}},
{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"b"},"spec":{"host":"y"}}]}`
	out, code := run(t, in, "--use-kube=false", "-", "-o", "json")
	if code != 0 || !strings.Contains(out, `"file": "-"`) || !strings.Contains(out, `"line": 3`) || !strings.Contains(out, `"resource": "DestinationRule b.default"`) {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestListAnalyzers(t *testing.T) {
	out, code := run(t, "", "--list-analyzers")
	for _, want := range []string{"IST0101", "IST0106", "IST0173", "MSH0001", "MSH0002", "ANALYZER"} {
		if !strings.Contains(out, want) {
			t.Errorf("--list-analyzers lacks %s:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}

// istioctl's shorthands run unchanged: -L lists, -k=false stays offline.
func TestIstioctlShorthands(t *testing.T) {
	if out, code := run(t, "", "-L"); code != 0 || !strings.Contains(out, "IST0177") {
		t.Errorf("-L: exit %d:\n%s", code, out)
	}
	if out, code := run(t, "", "-k=false", "-R", "testdata/broken"); code != 79 || !strings.Contains(out, "IST0101") {
		t.Errorf("-k=false: exit %d:\n%s", code, out)
	}
}

// A kubeconfig pointing at a listener that counts connections: with
// --use-kube=false nothing may connect; without the flag the reachability
// probe does (which shows the counter works).
func TestUseKubeFalseNeverTouchesTheNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	kubeconfig := filepath.Join(t.TempDir(), "config")
	os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: prod}}]
current-context: c
`, ln.Addr())), 0o600)
	t.Setenv("KUBECONFIG", kubeconfig)
	files := "testdata/broken"

	out, code := run(t, "", "--kubeconfig", kubeconfig, "--use-kube=false", "-R", files)
	if code != cli.ExitFindings || accepted.Load() != 0 {
		t.Fatalf("--use-kube=false: exit %d, %d connection(s) to the cluster, want 79 and none:\n%s", code, accepted.Load(), out)
	}
	out, code = run(t, "", "--kubeconfig", kubeconfig, "-R", files)
	if accepted.Load() == 0 {
		t.Fatalf("default --use-kube did not probe the cluster (exit %d):\n%s", code, out)
	}
	if code != cli.ExitFindings || !strings.Contains(out, "IST0101") {
		t.Errorf("unreachable cluster: want a files-only analysis (exit 79), got exit %d:\n%s", code, out)
	}
	ln.Close() // refused connections fail at once, where resets are retried
	_, code = run(t, "", "--kubeconfig", kubeconfig, "--use-kube=true", "-R", files)
	if code == 0 || code == cli.ExitFindings {
		t.Errorf("--use-kube=true with an unreachable cluster: exit %d, want an error", code)
	}
}

func TestMeshConfigFiles(t *testing.T) {
	const dir = "testdata/mesh/"
	out, code := run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--output-threshold", "Warning")
	if code != 0 || !strings.Contains(out, "IST0127") {
		t.Errorf("without --meshConfigFile: exit %d, want 0 with IST0127:\n%s", code, out)
	}
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--meshConfigFile", dir+"meshconfig.yaml", "--output-threshold", "Warning")
	if code != 0 || strings.Contains(out, "IST0127") {
		t.Errorf("with the root namespace from --meshConfigFile: exit %d, want 0 without IST0127:\n%s", code, out)
	}
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--meshConfigFile", dir+"badmesh.yaml")
	if code != cli.ExitData || !strings.Contains(out, "--meshConfigFile") || !strings.Contains(out, "badmesh.yaml") || !strings.Contains(out, "enableAutoMTLS") {
		t.Errorf("misspelt MeshConfig field: exit %d, want 65 naming the flag, file and field:\n%s", code, out)
	}
	// What mesh-pilot refuses to start with, analyze refuses too.
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--meshConfigFile", dir+"twoproviders.yaml")
	if code != cli.ExitData || !strings.Contains(out, "twoproviders.yaml") || !strings.Contains(out, `extensionProviders[1].name: provider "tracer" is defined twice`) {
		t.Errorf("two providers of one name: exit %d, want 65 naming the file and field:\n%s", code, out)
	}
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--meshConfigFile", dir+"missing.yaml")
	if code != cli.ExitUsage {
		t.Errorf("missing MeshConfig file: exit %d, want 64:\n%s", code, out)
	}
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", dir+"meshconfig.yaml")
	if code != cli.ExitData || !strings.Contains(out, "meshconfig.yaml:2") || !strings.Contains(out, "--meshConfigFile") {
		t.Errorf("MeshConfig given as an input: exit %d, want 65 naming the file and --meshConfigFile:\n%s", code, out)
	}
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--meshConfigFile", dir+"meshconfig.yaml", "--meshNetworksFile", dir+"meshnetworks.yaml")
	if code != cli.ExitFindings || !strings.Contains(out, `Error [IST0126] (MeshNetworks meshnetworks.platform testdata/mesh/meshnetworks.yaml:10) networks["west"].endpoints[0].fromRegistry: Unknown service registry cluster-west in network west`) ||
		strings.Contains(out, "registry Kubernetes in network east") {
		t.Errorf("--meshNetworksFile with an unknown registry: exit %d, want 79 with IST0126 for west only:\n%s", code, out)
	}
	// A deprecated MeshConfig field is IST0002 at its line, as istioctl
	// reports its Lightstep provider; the rest of the file is not.
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--meshConfigFile", dir+"deprecated.yaml")
	if code != 0 || !strings.Contains(out, "Warning [IST0002] (MeshConfig meshconfig.platform testdata/mesh/deprecated.yaml:10) extensionProviders[1].lightstep: Deprecated: field extensionProviders[1].lightstep is deprecated") ||
		strings.Count(out, "IST0002") != 1 {
		t.Errorf("--meshConfigFile with a Lightstep provider: exit %d, want 0 with one IST0002 at its line:\n%s", code, out)
	}
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--meshConfigFile", dir+"meshconfig.yaml")
	if strings.Contains(out, "IST0002") {
		t.Errorf("--meshConfigFile without deprecated fields: exit %d, want no IST0002:\n%s", code, out)
	}
	// A set mesh config field the mesh does not carry out is MSH0003 at
	// its line; enableAutoMtls: true, which it does, is not.
	if !strings.Contains(out, "Warning [MSH0003] (MeshConfig meshconfig.platform testdata/mesh/meshconfig.yaml:5) defaultConfig.discoveryAddress: defaultConfig.discoveryAddress is not enforced: injected proxies do not get it") ||
		strings.Count(out, "MSH0003") != 1 {
		t.Errorf("--meshConfigFile with defaultConfig.discoveryAddress: want one MSH0003, at line 5:\n%s", out)
	}
	out, code = run(t, "", "--use-kube=false", dir+"sidecar.yaml", "--timeout", "0s")
	if code != cli.ExitUsage || !strings.Contains(out, "--timeout") {
		t.Errorf("--timeout 0s: exit %d, want 64:\n%s", code, out)
	}
}

// A CUSTOM policy's provider with a field pilot does not carry out
// (clearRouteCache) is reported on the policy, naming the provider field.
func TestCustomProviderFieldNotCarriedOut(t *testing.T) {
	const dir = "testdata/mesh/"
	out, code := run(t, "", "--use-kube=false", dir+"custom.yaml", "--meshConfigFile", dir+"extauthz.yaml")
	if code != 0 || !strings.Contains(out, "Warning [MSH0003]") || !strings.Contains(out, `provider "opa"`) ||
		!strings.Contains(out, "envoyExtAuthzGrpc.clearRouteCache: routes are not recomputed") || strings.Contains(out, "failOpen") {
		t.Errorf("clearRouteCache on the CUSTOM policy's provider: exit %d, want 0 with a MSH0003 warning naming the field:\n%s", code, out)
	}
}

// A mesh ConfigMap among the files that pilot would not start on (no
// `mesh` key) is reported on that ConfigMap, as one it cannot parse is,
// instead of passing for the defaults.
func TestMeshConfigMapWithoutItsKey(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mesh.yaml")
	os.WriteFile(f, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mesh, namespace: mesh-system}\ndata:\n  meshConfig: |\n    enableAutoMtls: true\n"), 0o644)
	out, code := run(t, "", "--use-kube=false", f)
	if code != cli.ExitFindings || !strings.Contains(out, "IST0106") || !strings.Contains(out, `no key "mesh"`) {
		t.Errorf("a mesh ConfigMap without its mesh key: exit %d, want IST0106 saying the key is missing:\n%s", code, out)
	}
}
