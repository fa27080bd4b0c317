package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/freeport"
	"mesh.dev/mesh/internal/sandbox/runtime"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// syncBuffer is a buffer the command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// session is one `mesh dashboard ...` running in the test process.
type session struct {
	out, errOut *syncBuffer
	cancel      context.CancelFunc
	finished    chan struct{}
	err         error // the command's result, once finished is closed
}

func start(t *testing.T, kubeconfig string, args ...string) *session {
	t.Helper()
	s := &session{out: &syncBuffer{}, errOut: &syncBuffer{}, finished: make(chan struct{})}
	ctx := cli.NewContext(genericiooptions.IOStreams{In: strings.NewReader(""), Out: s.out, ErrOut: s.errOut})
	ctx.ConfigFlags.KubeConfig = &kubeconfig
	cmd := NewCommand(ctx)
	ctx.ConfigFlags.AddFlags(cmd.PersistentFlags()) // the root command's -n, --kubeconfig...
	cmdutil.MarkUsage(cmd)
	cmd.SetArgs(args)
	cmd.SetOut(s.out)
	cmd.SetErr(s.errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	c, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		s.err = cmd.ExecuteContext(c)
		close(s.finished)
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// run runs a command that is expected to end by itself.
func run(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	s := start(t, kubeconfig, args...)
	select {
	case <-s.finished:
		return s.out.String() + s.errOut.String(), s.err
	case <-time.After(60 * time.Second):
		t.Fatalf("mesh dashboard %v still running after 60 s; output %q %q", args, s.out.String(), s.errOut.String())
		return "", nil
	}
}

// url waits for the URL line on standard output.
func (s *session) url(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if line, _, ok := strings.Cut(s.out.String(), "\n"); ok {
			return line
		}
		select {
		case <-s.finished:
			t.Fatalf("the command ended before printing a URL: %v\n%s", s.err, s.errOut.String())
		default:
		}
	}
	t.Fatalf("no URL printed in 60 s; stderr %q", s.errOut.String())
	return ""
}

// stop interrupts the command as Ctrl-C does; a forward interrupted so ends without error.
func (s *session) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case <-s.finished:
	case <-time.After(30 * time.Second):
		t.Errorf("the command did not end within 30 s of its interruption")
	}
}

// stopClean is stop, checking an interrupted forward ends without error.
func (s *session) stopClean(t *testing.T) {
	t.Helper()
	s.stop(t)
	if s.err != nil {
		t.Errorf("interrupted: %v, want a clean end", s.err)
	}
}

func exitCode(err error) int {
	switch {
	case err == nil:
		return cli.ExitOK
	case cli.IsUsage(err):
		return cli.ExitUsage
	case cli.IsData(err):
		return cli.ExitData
	}
	return cli.ExitError
}

func newNamespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dash-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}

// Mistakes in the call are usage errors (exit 64), found before the cluster is asked.
func TestUsageErrors(t *testing.T) {
	kubeconfig := sandboxtest.Cluster(t).KubeconfigPath()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"prometheus", "--address", "my-laptop"}, `--address "my-laptop": expected an IP address or localhost`},
		{[]string{"grafana", "--port", "70000"}, "--port 70000"},
		{[]string{"jaeger", "--ui-port", "0"}, "--ui-port 0"},
		{[]string{"kiali", "extra"}, "unknown command"},
		{[]string{"envoy"}, "name a pod"},
		{[]string{"envoy", "ratings-0", "-l", "app=ratings"}, "not both"},
		{[]string{"envoy", "cronjob/x"}, `unknown type "cronjob"`},
		{[]string{"envoy", "-l", "app in (", "-n", "default"}, "--selector"},
		{[]string{"controlz"}, "-l app=mesh-pilot"},
		{[]string{"controlz", "p", "--ctrlz_port", "-1"}, "--ctrlz_port -1"},
		{[]string{"nosuch"}, `unknown dashboard "nosuch"`},
	} {
		out, err := run(t, kubeconfig, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mesh dashboard %v: %v (output %q), want an error saying %q", tc.args, err, out, tc.want)
			continue
		}
		if code := exitCode(err); code != cli.ExitUsage {
			t.Errorf("mesh dashboard %v: exit %d, want %d", tc.args, code, cli.ExitUsage)
		}
	}
}

// An addon that is not installed, or not running, is named with where it
// was looked for and what to do (exit 1), as is a pod that does not exist.
func TestAddonOrPodNotFound(t *testing.T) {
	c := sandboxtest.Cluster(t)
	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ns := newNamespace(t, cs)
	kubeconfig := c.KubeconfigPath()

	out, err := run(t, kubeconfig, "jaeger", "-n", ns, "--browser=false")
	want := `no Jaeger pod in namespace "` + ns + `" (label selector app=jaeger): the Jaeger addon is not installed there`
	if err == nil || !strings.Contains(err.Error(), want) || exitCode(err) != cli.ExitError {
		t.Errorf("jaeger in an empty namespace: exit %d, %v (output %q), want %q", exitCode(err), err, out, want)
	}
	// Without -n the addon is looked for in mesh-system, not the kubeconfig's namespace.
	if _, err := run(t, kubeconfig, "prometheus", "--browser=false"); err == nil || !strings.Contains(err.Error(), `in namespace "mesh-system"`) {
		t.Errorf("prometheus without -n: %v, want it looked for in mesh-system", err)
	}

	// A Grafana pod that never runs: bound to a node that does not exist.
	pending := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "grafana-0", Labels: map[string]string{"app.kubernetes.io/name": "grafana"}},
		Spec:       corev1.PodSpec{NodeName: "no-such-node", Containers: []corev1.Container{{Name: "grafana", Image: "registry.invalid/grafana:1"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), pending, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, kubeconfig, "grafana", "-n", ns, "--browser=false")
	if err == nil || !strings.Contains(err.Error(), "none is Running: grafana-0 is Pending") || exitCode(err) != cli.ExitError {
		t.Errorf("grafana with a Pending pod: exit %d, %v (output %q)", exitCode(err), err, out)
	}

	out, err = run(t, kubeconfig, "envoy", "productpage-0."+ns, "--browser=false")
	want = `no pod "productpage-0" in namespace "` + ns + `": give the pod as NAME.NAMESPACE or use -n`
	if err == nil || !strings.Contains(err.Error(), want) || exitCode(err) != cli.ExitError {
		t.Errorf("envoy for a missing pod: exit %d, %v (output %q), want %q", exitCode(err), err, out, want)
	}
	out, err = run(t, kubeconfig, "envoy", "deployment/productpage", "-n", ns, "--browser=false")
	if err == nil || !strings.Contains(err.Error(), `no deployment "productpage" in namespace "`+ns+`"`) {
		t.Errorf("envoy for a missing deployment: %v (output %q)", err, out)
	}
}

// TestDashboardsThroughRealPortForwards runs the command against a pod the
// sandbox runtime runs as a real process (the sample app, labelled as
// Istio's Prometheus addon, behind a Deployment): the API server's
// portforward subresource reaches the runtime's kubelet API, which dials
// the port inside the pod's network namespace.
func TestDashboardsThroughRealPortForwards(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox runtime needs root")
	}
	c := sandboxtest.Cluster(t)
	cs := kubernetes.NewForConfigOrDie(c.RESTConfig())
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin, "mesh.dev/mesh/cmd/mesh-sample").CombinedOutput(); err != nil {
		t.Fatalf("build mesh-sample: %v\n%s", err, out)
	}
	o, err := runtime.ForCluster(c, bin)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer scancel()
	rt, err := runtime.Start(sctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Stop(); err != nil {
			t.Error(err)
		}
	})
	ns := newNamespace(t, cs)
	kubeconfig := c.KubeconfigPath()

	labels := map[string]string{"app": "prometheus"}
	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "prometheus", Image: "mesh.dev/mesh-sample:test", Args: []string{"--role=ratings"},
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("http")}},
						PeriodSeconds: 1},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod string
	for deadline := time.Now().Add(120 * time.Second); pod == ""; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Deployment's pod never ran on the sandbox runtime in 120 s")
		}
		pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=prometheus"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == rt.NodeName() && podReady(&p) {
				pod = p.Name
			}
		}
	}

	// The addon by its label, --browser=false: the URL alone, and the page behind it.
	s := start(t, kubeconfig, "prometheus", "-n", ns, "--ui-port", "9080", "--browser=false")
	url := s.url(t)
	if !strings.HasPrefix(url, "http://localhost:") {
		t.Fatalf("URL %q, want http://localhost:PORT", url)
	}
	getRatings(t, url)
	if e := s.errOut.String(); !strings.Contains(e, "Forwarding to Prometheus (pod "+ns+"/"+pod+", port 9080)") {
		t.Errorf("stderr %q, want the forward named", e)
	}
	s.stopClean(t)

	// A chosen local port and address, the pod by its Deployment, and a
	// browser: $BROWSER is a real program that records the URL it is given.
	port := freePort(t)
	record := filepath.Join(t.TempDir(), "opened")
	browser := filepath.Join(t.TempDir(), "browser")
	if err := os.WriteFile(browser, []byte("#!/bin/sh\necho \"$1\" > "+record+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BROWSER", browser)
	s = start(t, kubeconfig, "envoy", "deployment/prometheus."+ns, "--ui-port", "9080", "--address", "127.0.0.1", "-p", strconv.Itoa(port))
	url = s.url(t)
	if want := "http://127.0.0.1:" + strconv.Itoa(port); url != want {
		t.Fatalf("URL %q, want %q", url, want)
	}
	getRatings(t, url)
	var opened []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if opened, _ = os.ReadFile(record); len(opened) > 0 {
			break
		}
	}
	if strings.TrimSpace(string(opened)) != url {
		t.Errorf("the browser was given %q, want %q", opened, url)
	}

	// The same local port while it is held: that --port cannot be listened on.
	_, err = run(t, kubeconfig, "envoy", "-l", "app=prometheus", "-n", ns, "--ui-port", "9080", "--address", "127.0.0.1", "-p", strconv.Itoa(port), "--browser=false")
	if err == nil || !strings.Contains(err.Error(), "port-forward to proxy "+pod+"."+ns) || exitCode(err) != cli.ExitError {
		t.Errorf("a local port in use: %v", err)
	}
	s.stopClean(t)

	// No browser to start: the URL is printed and the forward still works.
	t.Setenv("BROWSER", "")
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	s = start(t, kubeconfig, "envoy", "-l", "app=prometheus", "-n", ns, "--ui-port", "9080")
	url = s.url(t)
	getRatings(t, url)
	if e := s.errOut.String(); !strings.Contains(e, "Could not open a browser (no browser found") || !strings.Contains(e, "open "+url+" in yours") {
		t.Errorf("stderr without a browser: %q", e)
	}
	s.stopClean(t)
}

func getRatings(t *testing.T, url string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(url + "/ratings/0")
	if err != nil {
		t.Fatalf("GET %s/ratings/0: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(bufio.NewReader(resp.Body))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"ratings"`) {
		t.Fatalf("GET %s/ratings/0: %s %q, want the sample app's ratings", url, resp.Status, b)
	}
}

// freePort is a port on 127.0.0.1 for a server the test starts later.
func freePort(t *testing.T) int {
	return freeport.T(t)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
