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
	e.apply("bookinfo", []byte(`apiVersion: networking.istio.io/v1
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
`))
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

// TestResilienceSidecarRestart kills productpage's sidecar: with it gone the
// page through the gateway fails with an HTTP error from the gateway, and a
// plaintext request to the pod does not reach the app, which still runs
// behind the interception (no bypass of STRICT mTLS); once the runtime has
// restarted the sidecar the page is served again and plaintext is still
// refused.
func TestResilienceSidecarRestart(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	m := e.bookinfoOnMesh()
	pp := e.pod("bookinfo", "app=productpage")
	direct := "http://" + pp.Status.PodIP + ":9080/productpage"
	app := e.containerStatus(pp, "productpage")

	before := e.kill(pp, "mesh-proxy")
	var gatewayFailures []string
	directTries := 0
	e.waitFor("productpage's sidecar restarted and the pod Ready", 2*time.Minute, func() (bool, string) {
		p := e.pod("bookinfo", "app=productpage")
		st := e.containerStatus(p, "mesh-proxy")
		back := st.RestartCount > before && st.State.Running != nil && podReady(p)
		if len(gatewayFailures) == 0 || !back {
			status, body, err := get(m.client, m.url)
			switch {
			case err != nil:
				t.Fatalf("the gateway gave no answer with productpage's sidecar down (want an HTTP error): %v", err)
			case status >= 500:
				gatewayFailures = append(gatewayFailures, fmt.Sprintf("%d %s", status, strings.TrimSpace(body[:min(len(body), 80)])))
			case status != 200:
				t.Fatalf("the gateway answered %d with productpage's sidecar down, want 200 (sidecar back) or a 5xx: %s", status, body)
			}
			directTries++
			if status, body, err := get(m.client, direct); err == nil && (status == 200 || strings.Contains(body, "Simple Bookstore App")) {
				t.Fatalf("plaintext to productpage's pod was answered by the app with its sidecar down (%d): %s", status, body[:min(len(body), 200)])
			}
		}
		return back && len(gatewayFailures) > 0, fmt.Sprintf("restarts=%d state=%+v ready=%v gateway failures=%d", st.RestartCount, st.State, podReady(p), len(gatewayFailures))
	})
	t.Logf("with productpage's sidecar down: the gateway answered %v; %d plaintext requests to the pod all failed", gatewayFailures, directTries)

	// The app kept running all along: its requests were stopped by the interception, not by its absence.
	p := e.pod("bookinfo", "app=productpage")
	if st := e.containerStatus(p, "productpage"); st.ContainerID != app.ContainerID || st.RestartCount != app.RestartCount {
		t.Fatalf("productpage's app container changed while only its sidecar was killed: %s restarts %d, was %s restarts %d",
			st.ContainerID, st.RestartCount, app.ContainerID, app.RestartCount)
	}
	for i := 0; i < 20; i++ {
		if v, _, err := productPage(m.client, m.url, ""); err != nil || v != "v1" {
			t.Fatalf("product page %d of 20 through the gateway after the sidecar's restart: reviews %q, %v", i+1, v, err)
		}
		if _, page, err := productPage(m.client, direct, ""); err == nil {
			t.Fatalf("plaintext %d of 20 to productpage's pod after the sidecar's restart was served: %s", i+1, page[:min(len(page), 200)])
		}
	}
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
