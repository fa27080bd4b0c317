// Package e2e walks the README's demo on the sandbox with the sandbox
// runtime: the mesh's own binaries run as pods, the rest is simulated.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/runtime"
	"mesh.dev/mesh/internal/sandbox/sampleapp"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	if os.Getenv("MESH_E2E") != "1" {
		// Every test here skips: do not pay for a sandbox.
		os.Exit(m.Run())
	}
	sandboxtest.Main(m)
}

// demoEnabled keeps the walk out of `make test` until every step of it passes reliably.
func demoEnabled(t *testing.T) {
	if os.Getenv("MESH_E2E") != "1" {
		t.Skip("the demo walk is not reliable yet; run it with MESH_E2E=1 (needs root and `make build`)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the sandbox runtime needs root")
	}
}

type env struct {
	t    *testing.T
	c    *sandbox.Cluster
	cs   kubernetes.Interface
	rt   *runtime.Runtime
	bin  string
	root string
}

func setup(t *testing.T) *env {
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
	if len(o.Images) != len(runtime.Binaries) {
		t.Fatalf("bin/ has %v of %v: run `make build`", o.Images, runtime.Binaries)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := runtime.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, c: c, cs: kubernetes.NewForConfigOrDie(c.RESTConfig()), rt: rt, bin: bin, root: root}
	t.Cleanup(func() {
		if t.Failed() {
			e.dump()
		}
		rt.Stop()
	})
	return e
}

// mesh runs the CLI as a user would, against the sandbox.
func (e *env) mesh(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "mesh"), append(args, "--kubeconfig", e.c.KubeconfigPath())...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	e.t.Logf("$ mesh %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func (e *env) dump() {
	pods, err := e.cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err == nil {
		for _, p := range pods.Items {
			var states []string
			for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
				st := "?"
				switch {
				case s.State.Running != nil:
					st = "running"
				case s.State.Waiting != nil:
					st = s.State.Waiting.Reason + ": " + s.State.Waiting.Message
				case s.State.Terminated != nil:
					st = "terminated " + s.State.Terminated.Reason
				}
				states = append(states, s.Name+"="+st)
			}
			e.t.Logf("pod %s/%s node=%s phase=%s ip=%s %v", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, states)
		}
	}
	if evs, err := e.cs.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: "type=Warning"}); err == nil {
		for _, ev := range evs.Items {
			e.t.Logf("event %s/%s %s: %s", ev.Namespace, ev.InvolvedObject.Name, ev.Reason, ev.Message)
		}
	}
	files, _ := filepath.Glob(filepath.Join(e.rt.LogDir(), "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		e.t.Logf("--- %s\n%s", filepath.Base(f), b)
	}
}

// waitFor polls cond every half second until it holds or timeout passes.
func (e *env) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not reached in %s; last state: %s", what, timeout, last)
		}
	}
}

func TestDemo(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	if out, err := e.mesh(time.Minute, "precheck"); err != nil {
		t.Fatalf("precheck: %v\n%s", err, out)
	}
	if out, err := e.mesh(3*time.Minute, "install", "--set", "profile=demo", "-y", "--readiness-timeout", "60s"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}

	ctx := context.Background()

	// Bookinfo in a namespace labelled for injection, its images mapped to the sample app.
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo",
		Labels: map[string]string{"mesh-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(e.root, "..", "shared", "fixtures", "bookinfo", "bookinfo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mapped, _, err := sampleapp.MapBookinfo(raw, "mesh.dev/mesh-sample:demo")
	if err != nil {
		t.Fatal(err)
	}
	e.apply("bookinfo", mapped)
	e.waitFor("Bookinfo pods Ready with a sidecar", 2*time.Minute, func() (bool, string) {
		pods, err := e.cs.CoreV1().Pods("bookinfo").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var state []string
		ok := len(pods.Items) == 6
		for _, p := range pods.Items {
			names := []string{}
			for _, c := range p.Spec.Containers {
				names = append(names, c.Name)
			}
			ready := false
			for _, c := range p.Status.Conditions {
				ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
			}
			ok = ok && ready && len(p.Spec.Containers) == 2 && p.Spec.NodeName == e.rt.NodeName()
			state = append(state, fmt.Sprintf("%s node=%s containers=%v ready=%v", p.Name, p.Spec.NodeName, names, ready))
		}
		return ok, strings.Join(state, "; ")
	})

	// The gateway and destination rules, then the product page through the ingress gateway.
	for _, f := range []string{"bookinfo-gateway.yaml", "destination-rule-all.yaml"} {
		b, err := os.ReadFile(filepath.Join(e.root, "..", "shared", "fixtures", "bookinfo", "networking", f))
		if err != nil {
			t.Fatal(err)
		}
		e.apply("bookinfo", b)
	}
	gw, err := e.cs.CoreV1().Pods("mesh-system").List(ctx, metav1.ListOptions{LabelSelector: "app=mesh-ingressgateway"})
	if err != nil || len(gw.Items) != 1 {
		t.Fatalf("ingress gateway pod: %v (%d found)", err, len(gw.Items))
	}
	url := "http://" + gw.Items[0].Status.PodIP + ":8080/productpage"
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	e.waitFor("the product page through the ingress gateway", time.Minute, func() (bool, string) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "<title>Simple Bookstore App</title>"), resp.Status + ": " + string(b)
	})

	// Reviews 80/20 over v1 and v2: productpage's sidecar splits its calls.
	b, err := os.ReadFile(filepath.Join(e.root, "..", "shared", "fixtures", "bookinfo", "networking", "virtual-service-reviews-80-20.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e.apply("bookinfo", b)
	// Before the rule reaches productpage's sidecar, v3 answers a third of
	// the calls; 30 in a row without it happen by chance once in ~200,000.
	streak := 0
	e.waitFor("the reviews rule in productpage's sidecar (30 pages in a row without reviews-v3)", time.Minute, func() (bool, string) {
		v, err := reviewsVersion(client, url)
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
	counts := map[string]int{}
	for i := 0; i < 200; i++ {
		v, err := reviewsVersion(client, url)
		if err != nil {
			t.Fatalf("product page %d of 200 with the 80/20 rule: %v", i+1, err)
		}
		counts[v]++
	}
	t.Logf("reviews versions over 200 product pages: %v", counts)
	// 80/20 of 200 is 160/40, binomial sd ~5.7: 130..190 is over five sd either side.
	if counts["v3"] != 0 || counts["v1"]+counts["v2"] != 200 || counts["v1"] < 130 || counts["v1"] > 190 {
		t.Fatalf("reviews versions over 200 product pages: %v; want only v1 and v2, about 160/40", counts)
	}

	// The ratings abort for jason: reviews-v2 for jason shows the ratings
	// fault, everyone else gets reviews-v3 with its stars.
	for _, f := range []string{"virtual-service-reviews-jason-v2-v3.yaml", "virtual-service-ratings-test-abort.yaml"} {
		b, err := os.ReadFile(filepath.Join(e.root, "..", "shared", "fixtures", "bookinfo", "networking", f))
		if err != nil {
			t.Fatal(err)
		}
		e.apply("bookinfo", b)
	}
	const fault = `<p class="rating-error">Ratings service is currently unavailable</p>`
	check := func() error {
		v, page, err := productPage(client, url, "jason")
		if err != nil {
			return fmt.Errorf("as jason: %w", err)
		}
		if v != "v2" || !strings.Contains(page, fault) || strings.Contains(page, `class="stars"`) {
			return fmt.Errorf("as jason: reviews-%s, want reviews-v2 showing the ratings fault: %s", v, page)
		}
		v, page, err = productPage(client, url, "")
		if err != nil {
			return fmt.Errorf("anonymous: %w", err)
		}
		if v != "v3" || !strings.Contains(page, `class="stars" style="color: red"`) || strings.Contains(page, "rating-error") {
			return fmt.Errorf("anonymous: reviews-%s, want reviews-v3 with red stars: %s", v, page)
		}
		return nil
	}
	streak = 0
	e.waitFor("the jason rules in the sidecars (10 checks in a row)", time.Minute, func() (bool, string) {
		if err := check(); err != nil {
			streak = 0
			return false, err.Error()
		}
		streak++
		return streak >= 10, fmt.Sprintf("%d in a row", streak)
	})
	for i := 0; i < 20; i++ {
		if err := check(); err != nil {
			t.Fatalf("check %d of 20 with the ratings abort: %v", i+1, err)
		}
	}

	// mTLS between sidecars: with STRICT PeerAuthentication a plaintext
	// request straight to productpage's pod is refused, while the page
	// through the gateway (mTLS all the way) still works.
	pp, err := e.cs.CoreV1().Pods("bookinfo").List(ctx, metav1.ListOptions{LabelSelector: "app=productpage"})
	if err != nil || len(pp.Items) != 1 {
		t.Fatalf("productpage pod: %v (%d found)", err, len(pp.Items))
	}
	direct := "http://" + pp.Items[0].Status.PodIP + ":9080/productpage"
	if _, _, err := productPage(client, direct, ""); err != nil {
		t.Fatalf("plaintext to productpage's pod before STRICT (PERMISSIVE takes it): %v", err)
	}
	e.apply("bookinfo", []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\nspec:\n  mtls:\n    mode: STRICT\n"))
	e.waitFor("plaintext to productpage's pod refused under STRICT", time.Minute, func() (bool, string) {
		_, page, err := productPage(client, direct, "")
		if err == nil {
			return false, "plaintext still served: " + page[:min(len(page), 200)]
		}
		return true, ""
	})
	for i := 0; i < 20; i++ {
		if _, _, err := productPage(client, url, ""); err != nil {
			t.Fatalf("product page %d of 20 through the gateway under STRICT: %v", i+1, err)
		}
		if _, page, err := productPage(client, direct, ""); err == nil {
			t.Fatalf("plaintext %d of 20 to productpage's pod under STRICT was served: %s", i+1, page)
		}
	}
}

// reviewsVersion fetches the product page and returns the reviews version it
// shows; a page that is not a 200 or shows an error is an error.
func reviewsVersion(client *http.Client, url string) (string, error) {
	v, _, err := productPage(client, url, "")
	return v, err
}

// productPage fetches the product page, as user when not empty (Bookinfo's
// end-user header), and returns the reviews version it shows and the page.
// A page that is not a 200 or fails to show details or reviews is an error.
func productPage(client *http.Client, url, user string) (string, string, error) {
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
