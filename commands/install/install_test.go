package install_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	installcmd "mesh.dev/mesh/commands/install"
	precheckcmd "mesh.dev/mesh/commands/precheck"
	"mesh.dev/mesh/commands/tag"
	"mesh.dev/mesh/commands/uninstall"
	"mesh.dev/mesh/commands/upgrade"
	"mesh.dev/mesh/commands/verifyinstall"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// run runs one mesh command the way the binary would, with stdin that is not a terminal.
func run(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	ctx := cli.NewContext(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	root := &cobra.Command{Use: "mesh", SilenceErrors: true, SilenceUsage: true}
	ctx.ConfigFlags.AddFlags(root.PersistentFlags())
	root.AddCommand(installcmd.NewCommand(ctx), upgrade.NewCommand(ctx), uninstall.NewCommand(ctx),
		precheckcmd.NewCommand(ctx), verifyinstall.NewCommand(ctx), tag.NewCommand(ctx))
	root.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func meshCRDs(t *testing.T) int {
	t.Helper()
	c := kube.MustClient(sandboxtest.Cluster(t).RESTConfig())
	l, err := c.Dynamic.Resource(kube.CRDResource()).List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelPartOf + "=mesh"})
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

// writeKubeconfig writes a variant of the sandbox kubeconfig changed by edit.
func writeKubeconfig(t *testing.T, edit func(*clientcmdapi.Config)) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(sandboxtest.Cluster(t).KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBadInputAppliesNothing(t *testing.T) {
	good := sandboxtest.Cluster(t).KubeconfigPath()
	unreachable := writeKubeconfig(t, func(c *clientcmdapi.Config) {
		for _, cl := range c.Clusters {
			cl.Server = "https://127.0.0.1:1"
		}
	})
	expired := writeKubeconfig(t, func(c *clientcmdapi.Config) {
		for _, a := range c.AuthInfos {
			a.ClientCertificateData, a.ClientKeyData, a.Token = nil, nil, "expired-token"
		}
	})
	cases := []struct {
		name       string
		kubeconfig string
		args       []string
		want       string
		usage      bool
	}{
		{"no terminal and no -y", good, []string{"install", "--set", "profile=demo"}, "pass -y", true},
		{"wrong context", good, []string{"install", "--set", "profile=demo", "-y", "--context", "nosuch"}, `context "nosuch" does not exist`, false},
		{"unreachable cluster", unreachable, []string{"install", "--set", "profile=demo", "-y"}, "connection refused", false},
		{"expired credentials", expired, []string{"install", "--set", "profile=demo", "-y"}, "rejected the credentials", false},
		{"unreachable uninstall", unreachable, []string{"uninstall", "-y"}, "connection refused", false},
		{"unreachable precheck", unreachable, []string{"precheck"}, "connection refused", false},
		{"unknown --set path", good, []string{"install", "--set", "profil=demo", "-y"}, "profil", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := run(t, c.kubeconfig, c.args...)
			if err == nil {
				t.Fatal("command succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name the cause (%q)", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if cli.IsUsage(err) != c.usage || cli.IsData(err) {
				t.Errorf("error class: usage=%v data=%v, want usage=%v (exit 1 otherwise)", cli.IsUsage(err), cli.IsData(err), c.usage)
			}
		})
	}
	if n := meshCRDs(t); n != 0 {
		t.Errorf("bad input applied %d CRDs", n)
	}
}

func TestCommandsEndToEnd(t *testing.T) {
	kc := sandboxtest.Cluster(t).KubeconfigPath()
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(t, kc, args...)
		if err != nil {
			t.Fatalf("mesh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	out := mustRun("precheck", "--set", "profile=demo")
	if !strings.Contains(out, "The mesh can be installed.") || strings.Contains(out, "✘") {
		t.Errorf("precheck on a fresh sandbox:\n%s", out)
	}

	out = mustRun("install", "--set", "profile=demo", "--dry-run")
	if !strings.Contains(out, "Dry run: would apply") {
		t.Errorf("dry run output:\n%s", out)
	}
	if n := meshCRDs(t); n != 0 {
		t.Errorf("--dry-run created %d CRDs", n)
	}

	out = mustRun("install", "--set", "profile=demo", "-y")
	for _, want := range []string{"✔ Base installed", "✔ Pilot installed", "✔ Ingress gateway mesh-ingressgateway installed", "✔ Egress gateway mesh-egressgateway installed", "Installation complete"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
		t.Errorf("spinner or colour written to a non-terminal:\n%q", out)
	}

	out = mustRun("install", "--set", "profile=demo", "-y")
	if !strings.Contains(out, "Nothing to change") {
		t.Errorf("re-install does not say it changed nothing:\n%s", out)
	}

	out = mustRun("verify-install")
	if !strings.Contains(out, "installed as rendered and ready") {
		t.Errorf("verify-install after install:\n%s", out)
	}

	out = mustRun("install", "--set", "profile=demo", "-y", "-o", "json")
	var res struct {
		Components []struct {
			Name    string
			Objects []struct{ Action string }
		}
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil || len(res.Components) != 4 {
		t.Errorf("install -o json: %v, %d components\n%s", err, len(res.Components), out)
	}

	// Pretend a newer mesh installed the default revision: going back is refused without --force.
	c := kube.MustClient(sandboxtest.Cluster(t).RESTConfig())
	rec := schema.GroupVersionResource{Group: "install.mesh.io", Version: "v1alpha1", Resource: "meshoperators"}
	if _, err := c.Dynamic.Resource(rec).Namespace("mesh-system").Patch(context.Background(), "installed-state", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"install.mesh.io/version":"0.2.0"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, kc, "upgrade", "-y")
	if err == nil || !strings.Contains(err.Error(), "downgrade") || !strings.Contains(err.Error(), "--force") || !strings.Contains(out, "0.2.0 → ") {
		t.Errorf("a downgrade was not refused with a hint at --force (err %v):\n%s", err, out)
	}

	out = mustRun("upgrade", "--set", "profile=minimal", "-y", "--force")
	for _, want := range []string{"→", "profile demo → minimal", "Prechecks passed", "Pruned", "Verified: all"} {
		if !strings.Contains(out, want) {
			t.Errorf("upgrade output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, kc, "verify-install", "--set", "profile=demo")
	if err == nil || !strings.Contains(out, "missing: Deployment/mesh-ingressgateway") {
		t.Errorf("verify-install against demo after upgrading to minimal should list the gateways missing (err %v):\n%s", err, out)
	}

	out = mustRun("tag", "list")
	if !strings.Contains(out, "No revision tags") {
		t.Errorf("tag list:\n%s", out)
	}
	if _, err := run(t, kc, "tag", "set", "prod", "--revision", "nosuch"); err == nil || !strings.Contains(err.Error(), `"nosuch" is not installed`) {
		t.Errorf("tag set for a missing revision: %v", err)
	}
	mustRun("tag", "set", "prod", "--revision", "default")
	if out := mustRun("tag", "list"); !strings.Contains(out, "prod") || !strings.Contains(out, "default") {
		t.Errorf("tag list after set:\n%s", out)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{kube.LabelRevision: "prod"}}}
	if _, err := c.Kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, kc, "tag", "remove", "prod"); err == nil || !strings.Contains(err.Error(), "still used by namespaces [shop]") {
		t.Errorf("removing a tag in use: %v", err)
	}
	mustRun("tag", "remove", "prod", "-y")
	if out := mustRun("tag", "list"); !strings.Contains(out, "No revision tags") {
		t.Errorf("tag list after remove:\n%s", out)
	}

	out = mustRun("uninstall", "--purge", "-y")
	if !strings.Contains(out, "--purge deletes") || !strings.Contains(out, "Removed") {
		t.Errorf("uninstall --purge output:\n%s", out)
	}
	if n := meshCRDs(t); n != 0 {
		t.Errorf("%d mesh CRDs left after uninstall --purge", n)
	}
	if out := mustRun("uninstall", "-y"); !strings.Contains(out, "Nothing to uninstall") {
		t.Errorf("second uninstall:\n%s", out)
	}
}

func TestNotReadyNamesWhy(t *testing.T) {
	kc := sandboxtest.Cluster(t).KubeconfigPath()
	out, err := run(t, kc, "install", "--set", "profile=minimal", "--set", "components.pilot.k8s.nodeSelector.disk=none", "--readiness-timeout", "3s", "-y")
	if err == nil {
		t.Fatalf("install with an unschedulable pilot succeeded:\n%s", out)
	}
	if !strings.Contains(out, "✘ Pilot failed") || !strings.Contains(out, "Deployment/mesh-pilot -n mesh-system") ||
		!strings.Contains(out, "not scheduled") || !strings.Contains(out, "node") {
		t.Errorf("output does not name the pilot and why it is not ready:\n%s", out)
	}
	if !strings.Contains(err.Error(), "not ready") {
		t.Errorf("error: %v", err)
	}
	c := kube.MustClient(sandboxtest.Cluster(t).RESTConfig())
	hooks, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelPartOf + "=mesh"})
	if err != nil || len(hooks.Items) != 0 {
		t.Errorf("webhooks applied although pilot never became ready: %d (%v)", len(hooks.Items), err)
	}
	if out, err := run(t, kc, "uninstall", "--purge", "-y"); err != nil {
		t.Fatalf("uninstall after the failed install: %v\n%s", err, out)
	}
}
