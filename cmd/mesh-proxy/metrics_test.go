package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/inject"
)

// The inbound listener of bootstrapTmpl with Istio's stats filter before the router.
const statsBootstrapTmpl = `
node: {id: "sidecar~127.0.0.1~orders-7d9f8b6c5d-x2x9q.shop~shop.svc.cluster.local"}
static_resources:
  listeners:
  - name: virtualInbound
    traffic_direction: INBOUND
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound_0.0.0.0_8080
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app}}]}
          http_filters:
          - name: istio.stats
            typed_config: {"@type": type.googleapis.com/stats.PluginConfig}
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
`

// TestMergedMetricsOfAnInjectedPod: a pod whose app serves its own metrics
// (prometheus.io/port and /path pointing at it) is injected; the injector
// points the annotations at the status port and tells the proxy where the
// app's metrics are. The real mesh-proxy binary, run with the container's
// arguments' metrics flags and environment, serves on the status port's
// /stats/prometheus the proxy's metrics (Envoy's stats and Istio's
// standard metrics) merged with the app's, parsed as Prometheus does; its
// Prometheus port (15090) serves the proxy's alone. With the app's
// metrics gone, the merged endpoint still answers with the proxy's and
// counts the failure.
func TestMergedMetricsOfAnInjectedPod(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildOnce(t)

	// The app: business traffic on one port, its own metrics on another.
	orders := prometheus.NewCounter(prometheus.CounterOpts{Name: "shop_orders_total", Help: "Orders taken."})
	reg := prometheus.NewRegistry()
	reg.MustRegister(orders)
	appLn, _ := net.Listen("tcp", "127.0.0.1:0")
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		orders.Inc()
		io.WriteString(w, "order taken")
	})}
	go app.Serve(appLn)
	defer app.Close()
	metricsLn, _ := net.Listen("tcp", "127.0.0.1:0")
	metricsSrv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go metricsSrv.Serve(metricsLn)
	metricsPort := metricsLn.Addr().(*net.TCPAddr).Port

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-7d9f8b6c5d-x2x9q", Namespace: "shop", Labels: map[string]string{"app": "orders", "version": "v1", "pod-template-hash": "7d9f8b6c5d"},
			Annotations:     map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": fmt.Sprint(metricsPort), "prometheus.io/path": "/metrics"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "orders-7d9f8b6c5d", Controller: ptrTrue()}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "orders", Image: "shop/orders"}}},
	}
	injected, err := inject.Pod(pod, inject.Values{ProxyImage: "mesh/proxy", DiscoveryAddress: "mesh-pilot.mesh-system.svc:15012", LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	if a := injected.Annotations; a["prometheus.io/port"] != "15020" || a["prometheus.io/path"] != "/stats/prometheus" || a["prometheus.io/scrape"] != "true" {
		t.Fatalf("injected pod's scrape annotations: %v", a)
	}
	var sidecar corev1.Container
	for _, c := range injected.Spec.Containers {
		if c.Name == inject.ProxyContainer {
			sidecar = c
		}
	}
	if !strings.Contains(strings.Join(sidecar.Args, " "), "--prometheus-address 0.0.0.0:15090") {
		t.Fatalf("sidecar args %v: no --prometheus-address 0.0.0.0:15090", sidecar.Args)
	}
	env := os.Environ()
	for _, e := range sidecar.Env {
		if e.ValueFrom == nil && strings.HasPrefix(e.Name, "ISTIO_") {
			env = append(env, e.Name+"="+e.Value)
		}
	}

	port, admin, stats, prom := freePort(t), freePort(t), freePort(t), freePort(t)
	bs := filepath.Join(t.TempDir(), "bootstrap.yaml")
	os.WriteFile(bs, []byte(fmt.Sprintf(statsBootstrapTmpl, port, appLn.Addr().(*net.TCPAddr).Port)), 0o644)
	// The sidecar's addresses on loopback, so the test's ports do not collide.
	cmd := exec.Command(bin, "--bootstrap", bs, "--admin-address", fmt.Sprintf("127.0.0.1:%d", admin), "--health-address", "",
		"--stats-address", fmt.Sprintf("127.0.0.1:%d", stats), "--prometheus-address", fmt.Sprintf("127.0.0.1:%d", prom))
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, fmt.Sprintf("http://127.0.0.1:%d/ready", admin), &stderr)
	for i := 0; i < 3; i++ {
		if code, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/order", port)); code != 200 || body != "order taken" {
			t.Fatalf("request through the sidecar: %d %q", code, body)
		}
	}

	merged := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/stats/prometheus", stats))
	if v := value(merged, "shop_orders_total", nil); v != 3 {
		t.Errorf("merged: the app's shop_orders_total = %v, want 3 (families: %v)", v, names(merged))
	}
	if v := value(merged, "istio_requests_total", map[string]string{"reporter": "destination", "response_code": "200", "destination_workload": "orders"}); v != 3 {
		t.Errorf("merged: istio_requests_total{reporter=destination,response_code=200,destination_workload=orders} = %v, want 3", v)
	}
	if v := value(merged, "envoy_http_downstream_rq_total", map[string]string{"envoy_http_conn_manager_prefix": "inbound_0.0.0.0_8080"}); v != 3 {
		t.Errorf("merged: envoy_http_downstream_rq_total = %v, want 3", v)
	}
	if v := value(merged, "istio_agent_scrapes_total", nil); v != 1 {
		t.Errorf("merged: istio_agent_scrapes_total = %v, want 1", v)
	}
	if _, ok := merged["istio_agent_scrape_failures_total"]; ok {
		t.Errorf("merged: a scrape failure counted: %v", merged["istio_agent_scrape_failures_total"])
	}

	own := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/stats/prometheus", prom))
	if _, ok := own["shop_orders_total"]; ok {
		t.Error("the Prometheus port serves the app's metrics; it should serve the proxy's own")
	}
	if v := value(own, "istio_requests_total", map[string]string{"reporter": "destination"}); v != 3 {
		t.Errorf("Prometheus port: istio_requests_total = %v, want 3", v)
	}
	if _, ok := own["envoy_cluster_upstream_rq_total"]; !ok {
		t.Errorf("Prometheus port: no Envoy stats (families: %v)", names(own))
	}

	// The app's metrics endpoint goes away: the proxy's are still served.
	metricsSrv.Close()
	down := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/stats/prometheus", stats))
	if _, ok := down["shop_orders_total"]; ok {
		t.Error("app metrics served after the app's endpoint closed")
	}
	if v := value(down, "istio_requests_total", map[string]string{"reporter": "destination"}); v != 3 {
		t.Errorf("without the app: istio_requests_total = %v, want 3", v)
	}
	if v := value(down, "istio_agent_scrape_failures_total", map[string]string{"type": "application"}); v != 1 {
		t.Errorf("without the app: istio_agent_scrape_failures_total{type=application} = %v, want 1", v)
	}
}

func waitFor(t *testing.T, url string, stderr *strings.Builder) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200; stderr:\n%s", url, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape reads a metrics endpoint as Prometheus does (its text parser).
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s: not Prometheus' text format: %v", url, err)
	}
	return fams
}

// value sums the samples of a family whose labels include want (-1: no family).
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf, ok := fams[name]
	if !ok {
		return -1
	}
	sum := 0.0
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return sum
}

func names(fams map[string]*dto.MetricFamily) []string {
	var out []string
	for n := range fams {
		out = append(out, n)
	}
	return out
}

func ptrTrue() *bool { b := true; return &b }
