// Package demo is the README's demo walk on a sandbox with the sandbox
// runtime: install the mesh, run Bookinfo with sidecars, and show traffic
// rules, mTLS and the CLI's proxy views, each step checked as a user would
// check it. `make demo` narrates it; the e2e test asserts it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"mesh.dev/mesh/internal/sandbox/sampleapp"
)

// Namespace is where Bookinfo runs.
const Namespace = "bookinfo"

// Walk is one run of the demo against a running sandbox and runtime.
type Walk struct {
	// Kubeconfig and Config reach the sandbox as its administrator.
	Kubeconfig string
	Config     *rest.Config
	// Bin holds mesh (make build).
	Bin string
	// Fixtures is ../shared/fixtures (bookinfo/ and bookinfo/networking/).
	Fixtures string
	// RuntimeNode is the node the runtime's pods are bound to.
	RuntimeNode string
	// WorkDir receives the manifests as applied (Bookinfo with its images
	// mapped), so that a user can look at them; empty means none are kept.
	WorkDir string
	// Out receives the narration: each step, the commands and their output.
	Out io.Writer

	cs     kubernetes.Interface
	client *http.Client
	gwURL  string
}

// Step is one titled part of the walk.
type Step struct {
	Title string
	Run   func(ctx context.Context) error
}

// Steps lists the walk in order; each step relies on the ones before it.
func (w *Walk) Steps() []Step {
	return []Step{
		{"Check the cluster can take the mesh", w.Precheck},
		{"Install the mesh with the demo profile (pilot and gateways run for real)", w.Install},
		{"Bookinfo in a namespace labelled for injection: every pod gets a sidecar", w.Bookinfo},
		{"The product page through the ingress gateway", w.Gateway},
		{"Reviews traffic shifted 80/20 between v1 and v2", w.ReviewsSplit},
		{"A fault for jason: the ratings call aborts", w.RatingsAbort},
		{"STRICT mTLS between sidecars: plaintext refused", w.StrictMTLS},
		{"Every proxy has the config pilot sent (proxy-status)", w.ProxyStatus},
		{"productpage's clusters (proxy-config cluster)", w.ProxyConfigCluster},
		{"Two reviews proxies compared (proxy-config diff)", w.ProxyConfigDiff},
		{"The Bookinfo namespace analyzed: no findings", w.Analyze},
	}
}

// Run runs every step, stopping at the first that fails.
func (w *Walk) Run(ctx context.Context) error {
	for i, s := range w.Steps() {
		w.printf("\n==> %d. %s\n", i+1, s.Title)
		start := time.Now()
		if err := s.Run(ctx); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, s.Title, err)
		}
		w.printf("    ok (%s)\n", time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

func (w *Walk) init() error {
	if w.cs != nil {
		return nil
	}
	cs, err := kubernetes.NewForConfig(w.Config)
	if err != nil {
		return err
	}
	w.cs = cs
	w.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	if w.Out == nil {
		w.Out = io.Discard
	}
	return nil
}

func (w *Walk) printf(format string, args ...any) {
	if w.Out != nil {
		fmt.Fprintf(w.Out, format, args...)
	}
}

// Mesh runs the CLI as a user would (NO_COLOR, the sandbox's kubeconfig),
// prints the command and its output, and returns both with its error.
func (w *Walk) Mesh(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	out, err := w.mesh(ctx, timeout, args...)
	w.printf("$ mesh %s\n%s", strings.Join(args, " "), indentOutput([]byte(out)))
	return out, err
}

// mesh runs the CLI without printing anything.
func (w *Walk) mesh(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	if err := w.init(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(w.Bin, "mesh"), args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "KUBECONFIG="+w.Kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func indentOutput(out []byte) string {
	if len(out) == 0 {
		return ""
	}
	s := strings.TrimRight(string(out), "\n")
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}

// exitCode is the CLI's exit status, or -1 when it did not exit by itself.
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// WaitFor polls cond every half second until it holds or timeout passes;
// the error carries cond's last description of the state.
func WaitFor(ctx context.Context, what string, timeout time.Duration, cond func() (bool, string)) error {
	var last string
	for deadline := time.Now().Add(timeout); ; {
		ok, state := cond()
		if ok {
			return nil
		}
		last = state
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not reached in %s; last state: %s", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last state: %s", what, ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// fixture reads a file under Fixtures/bookinfo.
func (w *Walk) fixture(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(w.Fixtures, "bookinfo", name))
}

// applyFile applies a manifest in the Bookinfo namespace, saving it under
// WorkDir and printing the kubectl command that does the same.
func (w *Walk) applyFile(ctx context.Context, name string, manifest []byte) error {
	shown := filepath.Join(w.Fixtures, "bookinfo", name)
	if w.WorkDir != "" {
		shown = filepath.Join(w.WorkDir, filepath.Base(name))
		if err := os.WriteFile(shown, manifest, 0o644); err != nil {
			return err
		}
	}
	w.printf("$ kubectl apply --server-side -n %s -f %s\n", Namespace, shown)
	return Apply(ctx, w.Config, Namespace, manifest)
}

// Precheck runs `mesh precheck`.
func (w *Walk) Precheck(ctx context.Context) error {
	if out, err := w.Mesh(ctx, time.Minute, "precheck"); err != nil {
		return fmt.Errorf("mesh precheck: %w\n%s", err, out)
	}
	return nil
}

// Install runs `mesh install --set profile=demo -y`.
func (w *Walk) Install(ctx context.Context) error {
	if out, err := w.Mesh(ctx, 3*time.Minute, "install", "--set", "profile=demo", "-y", "--readiness-timeout", "90s"); err != nil {
		return fmt.Errorf("mesh install: %w\n%s", err, out)
	}
	return nil
}

// Bookinfo creates the labelled namespace and applies Bookinfo with its
// images mapped to the sample app, then waits for six Ready pods on the
// runtime, each with its sidecar.
func (w *Walk) Bookinfo(ctx context.Context) error {
	if err := w.init(); err != nil {
		return err
	}
	w.printf("$ kubectl create namespace %s && kubectl label namespace %s mesh-injection=enabled\n", Namespace, Namespace)
	_, err := w.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace,
		Labels: map[string]string{"mesh-injection": "enabled"}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	raw, err := w.fixture("bookinfo.yaml")
	if err != nil {
		return err
	}
	mapped, n, err := sampleapp.MapBookinfo(raw, "mesh.dev/mesh-sample:demo")
	if err != nil {
		return err
	}
	w.printf("# bookinfo.yaml with its %d images mapped to the sample app (mesh-sample --role=SERVICE --version=VERSION)\n", n)
	if err := w.applyFile(ctx, "bookinfo.yaml", mapped); err != nil {
		return err
	}
	w.printf("$ kubectl get pods -n %s   # until all six are Ready with two containers\n", Namespace)
	return WaitFor(ctx, "Bookinfo pods Ready with a sidecar", 3*time.Minute, func() (bool, string) {
		pods, err := w.cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var state []string
		ok := len(pods.Items) == 6
		for _, p := range pods.Items {
			names := []string{}
			for _, c := range longRunning(&p) {
				names = append(names, c.Name)
			}
			ready := isReady(&p)
			ok = ok && ready && runningContainers(&p) == 2 && p.Spec.NodeName == w.RuntimeNode
			state = append(state, fmt.Sprintf("%s node=%s containers=%v ready=%v", p.Name, p.Spec.NodeName, names, ready))
		}
		return ok, strings.Join(state, "; ")
	})
}

// longRunning are the containers that run for the pod's life: native
// sidecars (the injected proxy on Kubernetes 1.29 or later), then the
// pod's containers.
func longRunning(p *corev1.Pod) []corev1.Container {
	var cs []corev1.Container
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cs = append(cs, c)
		}
	}
	return append(cs, p.Spec.Containers...)
}

// runningContainers counts longRunning: what kubectl's READY column counts.
func runningContainers(p *corev1.Pod) int { return len(longRunning(p)) }

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// GatewayURL is the product page through the ingress gateway's pod.
func (w *Walk) GatewayURL(ctx context.Context) (string, error) {
	if w.gwURL != "" {
		return w.gwURL, nil
	}
	if err := w.init(); err != nil {
		return "", err
	}
	gw, err := w.cs.CoreV1().Pods("mesh-system").List(ctx, metav1.ListOptions{LabelSelector: "app=mesh-ingressgateway"})
	if err != nil || len(gw.Items) != 1 {
		return "", fmt.Errorf("ingress gateway pod: %v (%d found)", err, len(gw.Items))
	}
	w.gwURL = "http://" + gw.Items[0].Status.PodIP + ":8080/productpage"
	return w.gwURL, nil
}

// Gateway applies the gateway and destination rules and fetches the
// product page through the ingress gateway.
func (w *Walk) Gateway(ctx context.Context) error {
	for _, f := range []string{"networking/bookinfo-gateway.yaml", "networking/destination-rule-all.yaml"} {
		b, err := w.fixture(f)
		if err != nil {
			return err
		}
		if err := w.applyFile(ctx, f, b); err != nil {
			return err
		}
	}
	url, err := w.GatewayURL(ctx)
	if err != nil {
		return err
	}
	w.printf("$ curl -s %s | grep -o '<title>.*</title>'\n", url)
	err = WaitFor(ctx, "the product page through the ingress gateway", time.Minute, func() (bool, string) {
		_, page, err := ProductPage(w.client, url, "")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(page, "<title>Simple Bookstore App</title>"), page
	})
	if err == nil {
		w.printf("  <title>Simple Bookstore App</title>\n")
	}
	return err
}

// ReviewsSplit applies the 80/20 rule and counts the reviews versions over
// 200 product pages.
func (w *Walk) ReviewsSplit(ctx context.Context) error {
	url, err := w.GatewayURL(ctx)
	if err != nil {
		return err
	}
	b, err := w.fixture("networking/virtual-service-reviews-80-20.yaml")
	if err != nil {
		return err
	}
	if err := w.applyFile(ctx, "networking/virtual-service-reviews-80-20.yaml", b); err != nil {
		return err
	}
	// Before the rule reaches productpage's sidecar, v3 answers a third of
	// the calls; 30 in a row without it happen by chance once in ~200,000.
	streak := 0
	err = WaitFor(ctx, "the reviews rule in productpage's sidecar (30 pages in a row without reviews-v3)", time.Minute, func() (bool, string) {
		v, _, err := ProductPage(w.client, url, "")
		switch {
		case err != nil:
			streak = 0
			return false, err.Error()
		case v == "v3":
			streak = 0
		default:
			streak++
		}
		return streak >= 30, fmt.Sprintf("%d in a row, last %s", streak, v)
	})
	if err != nil {
		return err
	}
	w.printf("$ for i in $(seq 200); do curl -s %s | grep -o 'data-version=\"v[0-9]\"'; done | sort | uniq -c\n", url)
	counts := map[string]int{}
	for i := 0; i < 200; i++ {
		v, _, err := ProductPage(w.client, url, "")
		if err != nil {
			return fmt.Errorf("product page %d of 200 with the 80/20 rule: %w", i+1, err)
		}
		counts[v]++
	}
	w.printf("  %d reviews-v1, %d reviews-v2, %d reviews-v3\n", counts["v1"], counts["v2"], counts["v3"])
	// 80/20 of 200 is 160/40, binomial sd ~5.7: 130..190 is over five sd either side.
	if counts["v3"] != 0 || counts["v1"]+counts["v2"] != 200 || counts["v1"] < 130 || counts["v1"] > 190 {
		return fmt.Errorf("reviews versions over 200 product pages: %v; want only v1 and v2, about 160/40", counts)
	}
	return nil
}

// RatingsAbort applies the jason rules: reviews-v2 for jason shows the
// ratings fault, everyone else gets reviews-v3 with its red stars.
func (w *Walk) RatingsAbort(ctx context.Context) error {
	url, err := w.GatewayURL(ctx)
	if err != nil {
		return err
	}
	for _, f := range []string{"networking/virtual-service-reviews-jason-v2-v3.yaml", "networking/virtual-service-ratings-test-abort.yaml"} {
		b, err := w.fixture(f)
		if err != nil {
			return err
		}
		if err := w.applyFile(ctx, f, b); err != nil {
			return err
		}
	}
	const fault = `<p class="rating-error">Ratings service is currently unavailable</p>`
	check := func() error {
		v, page, err := ProductPage(w.client, url, "jason")
		if err != nil {
			return fmt.Errorf("as jason: %w", err)
		}
		if v != "v2" || !strings.Contains(page, fault) || strings.Contains(page, `class="stars"`) {
			return fmt.Errorf("as jason: reviews-%s, want reviews-v2 showing the ratings fault: %s", v, page)
		}
		v, page, err = ProductPage(w.client, url, "")
		if err != nil {
			return fmt.Errorf("anonymous: %w", err)
		}
		if v != "v3" || !strings.Contains(page, `class="stars" style="color: red"`) || strings.Contains(page, "rating-error") {
			return fmt.Errorf("anonymous: reviews-%s, want reviews-v3 with red stars: %s", v, page)
		}
		return nil
	}
	streak := 0
	err = WaitFor(ctx, "the jason rules in the sidecars (10 checks in a row)", time.Minute, func() (bool, string) {
		if err := check(); err != nil {
			streak = 0
			return false, err.Error()
		}
		streak++
		return streak >= 10, fmt.Sprintf("%d in a row", streak)
	})
	if err != nil {
		return err
	}
	w.printf("$ curl -s -H 'end-user: jason' %s | grep -o 'Ratings service is currently unavailable'\n", url)
	for i := 0; i < 20; i++ {
		if err := check(); err != nil {
			return fmt.Errorf("check %d of 20 with the ratings abort: %w", i+1, err)
		}
	}
	w.printf("  Ratings service is currently unavailable\n  (20 of 20: jason sees the fault from reviews-v2, anyone else reviews-v3's red stars)\n")
	return nil
}

// StrictMTLS applies a STRICT PeerAuthentication: plaintext straight to
// productpage's pod is served before and refused after, while the page
// through the gateway (mTLS all the way) keeps working.
func (w *Walk) StrictMTLS(ctx context.Context) error {
	url, err := w.GatewayURL(ctx)
	if err != nil {
		return err
	}
	pp, err := w.cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=productpage"})
	if err != nil || len(pp.Items) != 1 {
		return fmt.Errorf("productpage pod: %v (%d found)", err, len(pp.Items))
	}
	direct := "http://" + pp.Items[0].Status.PodIP + ":9080/productpage"
	w.printf("$ curl -s -o /dev/null -w '%%{http_code}\\n' %s   # plaintext, PERMISSIVE\n", direct)
	if _, _, err := ProductPage(w.client, direct, ""); err != nil {
		return fmt.Errorf("plaintext to productpage's pod before STRICT (PERMISSIVE takes it): %w", err)
	}
	w.printf("  200\n")
	pa := []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\nspec:\n  mtls:\n    mode: STRICT\n")
	if err := w.applyFile(ctx, "peer-authentication-strict.yaml", pa); err != nil {
		return err
	}
	var refusal string
	err = WaitFor(ctx, "plaintext to productpage's pod refused under STRICT", time.Minute, func() (bool, string) {
		_, page, err := ProductPage(w.client, direct, "")
		if err == nil {
			return false, "plaintext still served: " + page[:min(len(page), 200)]
		}
		refusal = err.Error()
		return true, ""
	})
	if err != nil {
		return err
	}
	w.printf("$ curl -s %s   # plaintext, STRICT\n  %s\n", direct, refusal)
	for i := 0; i < 20; i++ {
		if _, _, err := ProductPage(w.client, url, ""); err != nil {
			return fmt.Errorf("product page %d of 20 through the gateway under STRICT: %w", i+1, err)
		}
		if _, page, err := ProductPage(w.client, direct, ""); err == nil {
			return fmt.Errorf("plaintext %d of 20 to productpage's pod under STRICT was served: %s", i+1, page)
		}
	}
	w.printf("  (20 of 20: the gateway's mTLS requests served, plaintext refused)\n")
	return nil
}

// ProxyStatus runs `mesh proxy-status` until every proxy (the six Bookinfo
// sidecars and the gateways) shows SYNCED for every type.
func (w *Walk) ProxyStatus(ctx context.Context) error {
	if err := w.init(); err != nil {
		return err
	}
	want, err := w.proxyPods(ctx)
	if err != nil {
		return err
	}
	// Polled quietly: right after the last rule a proxy may still be STALE.
	var out string
	defer func() { w.printf("$ mesh proxy-status\n%s", indentOutput([]byte(out))) }()
	err = WaitFor(ctx, "every proxy SYNCED in `mesh proxy-status`", time.Minute, func() (bool, string) {
		var err error
		out, err = w.mesh(ctx, time.Minute, "proxy-status")
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		missing, bad := checkSynced(out, want)
		if len(missing) > 0 || len(bad) > 0 {
			return false, fmt.Sprintf("missing %v, not SYNCED %v", missing, bad)
		}
		return true, ""
	})
	return err
}

// proxyPods names (POD.NAMESPACE) the pods that run a proxy: Bookinfo's and
// the gateways.
func (w *Walk) proxyPods(ctx context.Context) ([]string, error) {
	var names []string
	for _, ns := range []string{Namespace, "mesh-system"} {
		pods, err := w.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			for _, c := range longRunning(&p) {
				if strings.Contains(c.Image, "mesh-proxy") {
					names = append(names, p.Name+"."+p.Namespace)
					break
				}
			}
		}
	}
	if len(names) < 7 {
		return nil, fmt.Errorf("pods with a proxy: %v, want Bookinfo's six and a gateway", names)
	}
	return names, nil
}

// checkSynced reads proxy-status's table: every wanted proxy must have a
// row, SYNCED for every type pilot sends it. NOT SENT means pilot had
// nothing of that type for the proxy (not that the proxy lags), which is
// right for ECDS (the demo has no extension configs) and for the egress
// gateway's routes and endpoints (no Gateway binds it in the demo).
func checkSynced(table string, want []string) (missing, bad []string) {
	lines := strings.Split(strings.TrimSpace(table), "\n")
	header := columns.Split(strings.TrimSpace(lines[0]), -1)
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		if f := columns.Split(strings.TrimSpace(l), -1); len(f) == len(header) {
			rows[f[0]] = f
		}
	}
	for _, name := range want {
		cells, ok := rows[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		for i, c := range cells[1:] {
			typ := header[i+1]
			if typ == "PILOT" || typ == "CLUSTER" || typ == "VERSION" {
				continue // which replica serves it, where and what it runs: not a state
			}
			if !strings.HasPrefix(c, "SYNCED") && !(c == "NOT SENT" && nothingToSend(name, typ)) {
				bad = append(bad, name+" "+typ+"="+c)
			}
		}
	}
	return missing, bad
}

func nothingToSend(proxy, typ string) bool {
	return typ == "ECDS" || (strings.HasPrefix(proxy, "mesh-egressgateway-") && (typ == "RDS" || typ == "EDS"))
}

// columns splits a table row: cells are apart by two spaces or more.
var columns = regexp.MustCompile(`\s{2,}`)

// ProxyConfigCluster runs `mesh proxy-config cluster` for productpage's
// proxy: its outbound clusters name the services it calls.
func (w *Walk) ProxyConfigCluster(ctx context.Context) error {
	pod, err := w.podOf(ctx, "productpage")
	if err != nil {
		return err
	}
	out, err := w.Mesh(ctx, time.Minute, "proxy-config", "cluster", pod+"."+Namespace)
	if err != nil {
		return fmt.Errorf("mesh proxy-config cluster: %w\n%s", err, out)
	}
	for _, svc := range []string{"reviews", "ratings", "details"} {
		if !strings.Contains(out, svc+"."+Namespace+".svc.cluster.local") {
			return fmt.Errorf("productpage's clusters do not list %s.%s.svc.cluster.local:\n%s", svc, Namespace, out)
		}
	}
	// destination-rule-all.yaml, applied with the gateway, made reviews' v2
	// subset; the table names that rule beside it.
	for _, line := range strings.Split(out, "\n") {
		cells := columns.Split(strings.TrimSpace(line), -1)
		if len(cells) == 6 && cells[0] == "reviews."+Namespace+".svc.cluster.local" && cells[2] == "v2" {
			if cells[5] != "reviews."+Namespace {
				return fmt.Errorf("reviews' v2 cluster names DestinationRule %q, want reviews.%s:\n%s", cells[5], Namespace, out)
			}
			return nil
		}
	}
	return fmt.Errorf("productpage's clusters have no reviews v2 subset from destination-rule-all.yaml:\n%s", out)
}

// ProxyConfigDiff runs `mesh proxy-config diff` of two reviews pods: they
// differ (exit 1), at least in their proxies' identities, which the diff names.
func (w *Walk) ProxyConfigDiff(ctx context.Context) error {
	v1, err := w.podOf(ctx, "reviews,version=v1")
	if err != nil {
		return err
	}
	v2, err := w.podOf(ctx, "reviews,version=v2")
	if err != nil {
		return err
	}
	out, err := w.Mesh(ctx, time.Minute, "proxy-config", "diff", v1+"."+Namespace, v2+"."+Namespace)
	if code := exitCode(err); code != 1 {
		return fmt.Errorf("mesh proxy-config diff: exit %d (%v), want 1: the two proxies differ\n%s", code, err, out)
	}
	if !strings.Contains(out, "~"+v1+"."+Namespace+"~") || !strings.Contains(out, "~"+v2+"."+Namespace+"~") {
		return fmt.Errorf("mesh proxy-config diff does not show the two proxies' node IDs:\n%s", out)
	}
	return nil
}

// Analyze runs `mesh analyze -n bookinfo`, which must find nothing.
func (w *Walk) Analyze(ctx context.Context) error {
	out, err := w.Mesh(ctx, time.Minute, "analyze", "-n", Namespace)
	if err != nil {
		return fmt.Errorf("mesh analyze -n %s: %w (exit %d)\n%s", Namespace, err, exitCode(err), out)
	}
	return nil
}

// podOf names the one Bookinfo pod with app=<selector...>.
func (w *Walk) podOf(ctx context.Context, app string) (string, error) {
	if err := w.init(); err != nil {
		return "", err
	}
	pods, err := w.cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil || len(pods.Items) != 1 {
		return "", fmt.Errorf("pod app=%s: %v (%d found)", app, err, len(pods.Items))
	}
	return pods.Items[0].Name, nil
}

// ProductPage fetches the product page, as user when not empty (Bookinfo's
// end-user header), and returns the reviews version it shows and the page.
// A page that is not a 200 or fails to show details or reviews is an error.
func ProductPage(client *http.Client, url, user string) (string, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	if user != "" {
		req.Header.Set("end-user", user)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	if resp.StatusCode != 200 || strings.Contains(page, `class="error"`) {
		return "", page, fmt.Errorf("%s: %s", resp.Status, page)
	}
	_, rest, ok := strings.Cut(page, `data-version="`)
	v, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 || v == "" {
		return "", page, fmt.Errorf("no reviews version on the page: %s", page)
	}
	return v, page, nil
}
