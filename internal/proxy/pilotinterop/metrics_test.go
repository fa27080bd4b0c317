package pilotinterop

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/proxy/peermeta"
)

// nodePeers are the node metadata of the proxies a test starts, by node id
// (what the injector's environment gives a real pod's proxy).
var nodePeers = map[string]*peermeta.Node{}

// injectAsDeployment makes the world's pod named by prefix a Deployment's
// pod (a ReplicaSet owner and its pod-template-hash label, as the
// Deployment controller makes them) and gives its proxy the node metadata
// the injector's environment carries for it.
func injectAsDeployment(t *testing.T, w *pilottest.World, prefix, deployment string) string {
	t.Helper()
	var pod *corev1.Pod
	for _, p := range w.In.Pods {
		if strings.HasPrefix(p.Name, prefix) {
			pod = p
			break
		}
	}
	if pod == nil {
		t.Fatalf("no pod %s*", prefix)
	}
	yes := true
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: deployment + "-7d9f8c", Controller: &yes}}
	pod.Labels["pod-template-hash"] = "7d9f8c"
	env := map[string]string{"POD_NAME": pod.Name, "POD_NAMESPACE": pod.Namespace, "SERVICE_ACCOUNT": pod.Spec.ServiceAccountName}
	for _, e := range inject.MetadataEnv(pod) {
		env[e.Name] = e.Value
	}
	n, err := peermeta.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	node := w.PodProxy(model.SidecarProxy, prefix)
	nodePeers[node] = n
	t.Cleanup(func() { delete(nodePeers, node) })
	return node
}

// headerApp answers every request and remembers whether any carried peer metadata.
type headerApp struct {
	mu  sync.Mutex
	saw []string
}

func (a *headerApp) start(t *testing.T) netip.AddrPort {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		a.mu.Lock()
		for k := range req.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-envoy-peer-metadata") {
				a.saw = append(a.saw, k)
			}
		}
		a.mu.Unlock()
		io.WriteString(rw, "ok")
	}))
	t.Cleanup(srv.Close)
	return netip.MustParseAddrPort(srv.Listener.Addr().String())
}

// scrape reads a proxy's /stats/prometheus (Prometheus' text format, as a
// Prometheus server scrapes it) and returns the series of metric name.
func scrape(t *testing.T, admin, name string) []map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(prommodel.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/stats/prometheus is not Prometheus text: %v", err)
	}
	var out []map[string]string
	for _, m := range mfs[name].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		l["__value__"] = fmt.Sprint(value(m))
		out = append(out, l)
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return float64(m.GetHistogram().GetSampleCount())
}

// series waits until a proxy shows a series of name with the labels want
// (count as the value) and returns it, or fails listing what it has.
func series(t *testing.T, admin, name string, want map[string]string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		all := scrape(t, admin, name)
		for _, s := range all {
			ok := true
			for k, v := range want {
				if s[k] != v {
					ok = false
					break
				}
			}
			if ok {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s series with %v; series:\n%v", admin, name, want, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIstioMetricsThroughTwoSidecars: requests from productpage to reviews
// through both pilot-configured sidecars (real ADS, mesh mTLS) are counted
// by both proxies in Istio's metrics with both workloads filled in, as a
// user's query by source_workload, destination_workload and response_code
// expects: the metadata exchange put each side's node metadata (the
// injector's environment) in headers, and neither app saw those headers.
func TestIstioMetricsThroughTwoSidecars(t *testing.T) {
	w, _ := world(t)
	client := injectAsDeployment(t, w, "productpage-v1", "productpage-v1")
	injectAsDeployment(t, w, "reviews-v1", "reviews-v1")
	pc := pushContext(w)
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	app := &headerApp{}
	server := startInboundTo(t, w, pc, "reviews-v1", authority, app.start(t))
	go func() {
		for {
			select {
			case server.dst <- netip.AddrPortFrom(server.podIP, 9080):
			case <-t.Context().Done():
				return
			}
		}
	}()
	out := startOutbound(t, pc, client, authority, "reviews.default.svc.cluster.local:9080", server)
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", "http://"+out.addr+"/reviews/1", nil)
		req.Host = "reviews:9080"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("through the sidecars: %d", resp.StatusCode)
		}
		if v := resp.Header.Get(peermeta.HeaderMetadata); v != "" {
			t.Errorf("the client app got the server's peer metadata header")
		}
	}
	app.mu.Lock()
	if len(app.saw) > 0 {
		t.Errorf("the server app saw peer metadata headers %v", app.saw)
	}
	app.mu.Unlock()

	both := map[string]string{
		"source_workload": "productpage-v1", "source_workload_namespace": "default", "source_app": "productpage", "source_version": "v1",
		"source_canonical_service": "productpage", "source_canonical_revision": "v1",
		"source_principal":     "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
		"destination_workload": "reviews-v1", "destination_workload_namespace": "default", "destination_app": "reviews", "destination_version": "v1",
		"destination_canonical_service": "reviews", "destination_canonical_revision": "v1",
		"destination_service": "reviews.default.svc.cluster.local", "destination_service_name": "reviews", "destination_service_namespace": "default",
		"destination_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
		"source_cluster":        "Kubernetes", "destination_cluster": "Kubernetes",
		"request_protocol": "http", "response_code": "200", "response_flags": "-", "__value__": "3",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range both {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	series(t, out.proxy.AdminAddr(), "istio_requests_total", with(map[string]string{"reporter": "source", "connection_security_policy": "unknown"}))
	series(t, server.proxy.AdminAddr(), "istio_requests_total", with(map[string]string{"reporter": "destination", "connection_security_policy": "mutual_tls"}))
	for _, h := range []string{"istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"} {
		series(t, out.proxy.AdminAddr(), h, map[string]string{"reporter": "source", "destination_workload": "reviews-v1", "__value__": "3"})
		series(t, server.proxy.AdminAddr(), h, map[string]string{"reporter": "destination", "source_workload": "productpage-v1", "__value__": "3"})
	}
}

// echoApp echoes every TCP connection's bytes.
func echoApp(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestIstioTCPMetricsThroughTwoSidecars: a TCP connection from productpage
// to a TCP service backed by reviews goes through both sidecars over mesh
// mTLS; the two proxies exchange metadata ahead of the stream (the app's
// bytes arrive untouched) and both count the connection opened and closed
// and its bytes, with both workloads filled in.
func TestIstioTCPMetricsThroughTwoSidecars(t *testing.T) {
	w, _ := world(t)
	if err := w.AddYAML([]byte(`apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: default}
spec:
  selector: {app: reviews}
  clusterIP: 198.19.0.80
  ports: [{name: tcp-echo, port: 9000}]
`)); err != nil {
		t.Fatal(err)
	}
	client := injectAsDeployment(t, w, "productpage-v1", "productpage-v1")
	injectAsDeployment(t, w, "reviews-v1", "reviews-v1")
	pc := pushContext(w)
	authority, err := ca.NewSelfSigned("mesh", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server := startInboundTo(t, w, pc, "reviews-v1", authority, echoApp(t))
	go func() {
		for {
			select {
			case server.dst <- netip.AddrPortFrom(server.podIP, 9000):
			case <-t.Context().Done():
				return
			}
		}
	}()
	out := startOutbound(t, pc, client, authority, "tcp-echo.default.svc.cluster.local:9000", server)
	c, err := net.Dial("tcp", out.addr)
	if err != nil {
		t.Fatal(err)
	}
	const msg = "hello over tcp\n"
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo through the sidecars: %q %v", buf, err)
	}
	c.Close()

	peers := map[string]string{"source_workload": "productpage-v1", "source_app": "productpage", "destination_workload": "reviews-v1",
		"destination_app": "reviews", "destination_version": "v1", "destination_service": "tcp-echo.default.svc.cluster.local", "request_protocol": "tcp"}
	for _, side := range []struct {
		admin, reporter, security string
	}{{out.proxy.AdminAddr(), "source", "unknown"}, {server.proxy.AdminAddr(), "destination", "mutual_tls"}} {
		want := func(v string) map[string]string {
			m := map[string]string{"reporter": side.reporter, "connection_security_policy": side.security, "__value__": v}
			for k, x := range peers {
				m[k] = x
			}
			return m
		}
		series(t, side.admin, "istio_tcp_connections_opened_total", want("1"))
		series(t, side.admin, "istio_tcp_connections_closed_total", want("1"))
		series(t, side.admin, "istio_tcp_received_bytes_total", want(fmt.Sprint(len(msg))))
		series(t, side.admin, "istio_tcp_sent_bytes_total", want(fmt.Sprint(len(msg))))
	}
}
