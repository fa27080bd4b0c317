package fallback

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestServeMetrics: a scrape of the agent's port after two fallbacks and a
// veto shows them, as Prometheus reads them.
func TestServeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	srv, addr, err := ServeMetrics("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart-1"}}
	m.fellBack(pod, ReasonExited)
	m.ended(pod)
	m.fellBack(pod, ReasonHung)
	m.vetoed(pod)
	resp, err := http.Get("http://" + addr.String() + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", MetricsPath, resp.Status)
	}
	for _, want := range []string{
		`mesh_sidecar_fallbacks_total{namespace="shop",pod="cart-1",reason="ProxyExited"} 1`,
		`mesh_sidecar_fallbacks_total{namespace="shop",pod="cart-1",reason="ProxyHung"} 1`,
		`mesh_sidecar_fallback_vetoes_total{namespace="shop",pod="cart-1"} 1`,
		`mesh_sidecar_fallback_active{namespace="shop",pod="cart-1"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s:\n%s", want, body)
		}
	}
}
