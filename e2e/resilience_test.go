package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/syncstatus"
)

// TestResiliencePilotRestart kills pilot's process mid-demo: while it is
// gone the proxies keep serving with the config they have (the product page
// through the gateway, reviews still routed to v1 only); when the runtime
// has restarted it, every proxy has reconnected and is SYNCED with the new
// process, and a rule changed after that reaches them.
func TestResiliencePilotRestart(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	m := e.bookinfoOnMesh()
	pilot := e.pod("mesh-system", "app=mesh-pilot")
	debug := net.JoinHostPort(pilot.Status.PodIP, strconv.Itoa(syncstatus.DebugPort))
	want := e.meshProxies()
	e.waitFor("every proxy SYNCED before the kill", time.Minute, func() (bool, string) { return allSynced(debug, want) })

	before := e.kill(pilot, "discovery")
	// Pages are fetched from the kill until pilot is back, back to back
	// while its debug port is closed: those show that the proxies serve
	// without it. Every page must be served and show reviews-v1.
	withoutPilot, pages := 0, 0
	page := func(down bool) {
		v, err := reviewsVersion(m.client, m.url)
		if err != nil || v != "v1" {
			t.Fatalf("product page %d after killing pilot (pilot down: %v): reviews %q, %v; want it served with reviews-v1 as routed", pages+1, down, v, err)
		}
		pages++
		if down {
			withoutPilot++
		}
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if reachable(debug) {
			if withoutPilot > 0 {
				break // back already
			}
			continue // the killed process has not closed its port yet
		}
		page(true)
	}
	e.waitFor("pilot restarted and Ready", 2*time.Minute, func() (bool, string) {
		page(!reachable(debug))
		p := e.pod("mesh-system", "app=mesh-pilot")
		st := e.containerStatus(p, "discovery")
		return st.RestartCount > before && st.State.Running != nil && podReady(p),
			fmt.Sprintf("restarts=%d state=%+v ready=%v", st.RestartCount, st.State, podReady(p))
	})
	t.Logf("%d product pages served with reviews-v1 between the kill and pilot Ready again, %d of them while pilot's port %s was closed", pages, withoutPilot, debug)
	if withoutPilot == 0 {
		t.Fatalf("no product page was fetched while pilot was down (its port %s never found closed after the kill)", debug)
	}
	if p := e.pod("mesh-system", "app=mesh-pilot"); p.Status.PodIP != pilot.Status.PodIP {
		t.Fatalf("pilot came back at %s, not %s: not a container restart", p.Status.PodIP, pilot.Status.PodIP)
	}

	// The new pilot process knows only the proxies that reconnected to it.
	e.waitFor("every proxy reconnected and SYNCED with the restarted pilot", 2*time.Minute, func() (bool, string) { return allSynced(debug, want) })
	// And as a user sees it.
	e.waitFor("mesh proxy-status: every proxy SYNCED with the restarted pilot", time.Minute, func() (bool, string) {
		out, err := e.mesh(time.Minute, "proxy-status")
		if err != nil {
			return false, err.Error()
		}
		return tableSynced(out, want)
	})

	// A rule changed now reaches the reconnected sidecars: productpage's sends reviews to v3.
	e.apply("bookinfo", []byte(reviewsV3))
	streak := 0
	e.waitFor("the reviews-v3 rule through the reconnected sidecars (20 pages in a row)", time.Minute, func() (bool, string) {
		v, err := reviewsVersion(m.client, m.url)
		if err != nil || v != "v3" {
			streak = 0
			return false, fmt.Sprintf("reviews %q, %v", v, err)
		}
		streak++
		return streak >= 20, fmt.Sprintf("%d in a row", streak)
	})
}

// TestResilienceSidecarRestart kills a sidecar, first productpage's (called
// by the ingress gateway), then ratings' (called by reviews-v3's sidecar).
// With it gone, calls to the pod fail with an error from the caller's proxy,
// and a plaintext request to the pod does not reach its app, which still
// runs behind the interception: no bypass of STRICT mTLS. Once the runtime
// has restarted the sidecar, calls are served again and plaintext is still
// refused.
func TestResilienceSidecarRestart(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	m := e.bookinfoOnMesh()

	e.sidecarOutage("productpage", "/productpage", func() (bool, string) {
		status, body, err := get(m.client, m.url)
		switch {
		case err != nil:
			t.Fatalf("the gateway gave no answer (want the page or an HTTP error): %v", err)
		case status >= 500:
			return true, fmt.Sprintf("gateway %d %s", status, strings.TrimSpace(body[:min(len(body), 80)]))
		case status != 200:
			t.Fatalf("the gateway answered %d, want 200 or a 5xx: %s", status, body)
		}
		return false, ""
	})

	// reviews-v3 calls ratings for its stars.
	e.apply("bookinfo", []byte(reviewsV3))
	const fault = `<p class="rating-error">`
	// One product page: reviews-v3 showing ratings' stars (ok), or the ratings fault (how).
	ratings := func() (ok bool, faulted bool, how string) {
		v, page, err := productPage(m.client, m.url, "")
		switch {
		case err != nil || v != "v3":
			return false, false, fmt.Sprintf("reviews %q, %v", v, err)
		case strings.Contains(page, fault):
			_, msg, _ := strings.Cut(page, fault)
			return false, true, "reviews-v3 shows " + msg[:min(len(msg), 120)]
		case strings.Contains(page, `class="stars"`):
			return true, false, ""
		}
		return false, false, "neither stars nor the ratings fault: " + page
	}
	streak := 0
	e.waitFor("reviews-v3 with ratings' stars (20 pages in a row)", time.Minute, func() (bool, string) {
		ok, _, how := ratings()
		if !ok {
			streak = 0
			return false, how
		}
		streak++
		return streak >= 20, fmt.Sprintf("%d in a row", streak)
	})
	e.sidecarOutage("ratings", "/ratings/0", func() (bool, string) {
		ok, failed, how := ratings()
		if !ok && !failed {
			t.Fatalf("with ratings' sidecar down the page must still be served by reviews-v3, with stars or the ratings fault: %s", how)
		}
		return failed, how
	})
}

// reviewsV3 routes every call to reviews to v3.
const reviewsV3 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v3
`

// sidecarOutage kills the sidecar of the Bookinfo pod app=app and waits for
// its restart. call is a request a user makes that reaches the pod through
// the mesh; it reports whether it failed (and how), and fails the test
// itself on anything but the served answer or a clear error from the
// caller's proxy. At least one call must fail while the sidecar is down and
// every one must be served after; a plaintext request to path on the pod
// must fail throughout, while the app's container keeps running.
func (e *env) sidecarOutage(app, path string, call func() (failed bool, how string)) {
	t := e.t
	t.Helper()
	pod := e.pod("bookinfo", "app="+app)
	direct := "http://" + pod.Status.PodIP + ":9080" + path
	appBefore := e.containerStatus(pod, app)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	plaintext := func(when string) {
		if status, body, err := get(client, direct); err == nil {
			t.Fatalf("plaintext to %s's pod %s was answered (%d): %s", app, when, status, body[:min(len(body), 200)])
		}
	}

	before := e.kill(pod, "mesh-proxy")
	var failures []string
	tries := 0
	e.waitFor(app+"'s sidecar restarted and the pod Ready, after a call failed", 2*time.Minute, func() (bool, string) {
		p := e.pod("bookinfo", "app="+app)
		st := e.containerStatus(p, "mesh-proxy")
		back := st.RestartCount > before && st.State.Running != nil && podReady(p)
		if len(failures) == 0 || !back {
			tries++
			if failed, how := call(); failed {
				failures = append(failures, how)
			}
			plaintext("with its sidecar down")
		}
		return back && len(failures) > 0, fmt.Sprintf("restarts=%d state=%+v ready=%v calls failed: %d of %d", st.RestartCount, st.State, podReady(p), len(failures), tries)
	})
	t.Logf("with the sidecar of %s down %d of %d calls failed: %v; plaintext to the pod failed every time", app, len(failures), tries, failures)

	// The app ran all along: the interception stopped the plaintext, not the app's absence.
	p := e.pod("bookinfo", "app="+app)
	if st := e.containerStatus(p, app); st.ContainerID != appBefore.ContainerID || st.RestartCount != appBefore.RestartCount || st.State.Running == nil {
		t.Fatalf("%s's app container changed while only its sidecar was killed: %s restarts %d, was %s restarts %d",
			app, st.ContainerID, st.RestartCount, appBefore.ContainerID, appBefore.RestartCount)
	}
	streak := 0
	e.waitFor(app+" served through the mesh again (20 calls in a row)", time.Minute, func() (bool, string) {
		if failed, how := call(); failed {
			streak = 0
			return false, how
		}
		plaintext("after its sidecar's restart")
		streak++
		return streak >= 20, fmt.Sprintf("%d in a row", streak)
	})
}

// meshProxies names the proxies pilot should list, as pod.namespace: every
// Bookinfo pod's sidecar and the ingress gateway.
func (e *env) meshProxies() []string {
	e.t.Helper()
	names := []string{e.pod("mesh-system", "app=mesh-ingressgateway").Name + ".mesh-system"}
	pods, err := e.cs.CoreV1().Pods("bookinfo").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			names = append(names, p.Name+".bookinfo")
		}
	}
	sort.Strings(names)
	return names
}

// allSynced reports whether pilot's /debug/syncz lists every proxy in want
// with its clusters and listeners SYNCED and no type STALE or NACKed.
func allSynced(debug string, want []string) (bool, string) {
	c, err := syncstatus.New(debug)
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.Syncz(ctx)
	if err != nil {
		return false, err.Error()
	}
	got := map[string]syncstatus.ProxyStatus{}
	for _, r := range rows {
		got[r.Name()] = r
	}
	var bad []string
	for _, name := range want {
		r, ok := got[name]
		if !ok {
			bad = append(bad, name+" not connected")
			continue
		}
		for _, typ := range syncstatus.Types {
			s := r.Status(typ).Status
			if s == "STALE" || s == "NACK" || ((typ == "CDS" || typ == "LDS") && s != "SYNCED") {
				bad = append(bad, fmt.Sprintf("%s %s %s", name, typ, s))
			}
		}
	}
	return len(bad) == 0, fmt.Sprintf("%d proxies listed; %v", len(rows), bad)
}

// tableSynced reports whether a `mesh proxy-status` table has a row for each
// proxy in want with at least clusters and listeners SYNCED and nothing STALE or NACKed.
func tableSynced(table string, want []string) (bool, string) {
	rows := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = line
		}
	}
	var bad []string
	for _, name := range want {
		row, ok := rows[name]
		switch {
		case !ok:
			bad = append(bad, name+" missing")
		case strings.Contains(row, "STALE") || strings.Contains(row, "NACK") || strings.Count(row, "SYNCED") < 2:
			bad = append(bad, row)
		}
	}
	return len(bad) == 0, strings.Join(bad, "; ")
}

// reachable reports whether something accepts and answers HTTP at addr.
func reachable(addr string) bool {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// get fetches url and returns the status and body.
func get(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
