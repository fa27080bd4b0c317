package pilot_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"

	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/xds"
)

// catchAll is the cluster a proxy's virtualOutbound listener sends
// connections no service claims to: PassthroughCluster under ALLOW_ANY,
// BlackHoleCluster under REGISTRY_ONLY.
func catchAll(c *pilottest.ADSClient) string {
	a := c.Resource(resourcev3.ListenerType, xds.VirtualOutbound)
	if a == nil {
		return ""
	}
	var l listenerv3.Listener
	if a.UnmarshalTo(&l) != nil {
		return ""
	}
	for _, fc := range l.FilterChains {
		if fc.Name != xds.VirtualOutbound+"-catchall-tcp" {
			continue
		}
		for _, f := range fc.Filters {
			var tp tcpproxy.TcpProxy
			if f.GetTypedConfig().UnmarshalTo(&tp) == nil {
				return tp.GetCluster()
			}
		}
	}
	return ""
}

// TestMeshConfigMapChangesReachRunningProxies: pilot watches its mesh
// ConfigMap. A connected proxy's ADS stream (the same one, no reconnect)
// gets outboundTrafficPolicy REGISTRY_ONLY and back as the ConfigMap
// changes; a pod injected after a change of defaultConfig gets the new
// proxyMetadata. A change pilot cannot read is refused: the proxy keeps
// its config, /debug/mesh still shows the last good one, and the refusal
// is a Warning Event on the ConfigMap naming the field and the metric
// mesh_pilot_mesh_config_rejected at 1, until the ConfigMap is fixed.
func TestMeshConfigMapChangesReachRunningProxies(t *testing.T) {
	e := newEnv(t, 3*time.Minute)
	ctx, kube := e.ctx, e.kube
	const ns = "meshcfg-system"
	e.createNamespaces(ns)
	cms := kube.CoreV1().ConfigMaps(ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Data: map[string]string{"mesh": "outboundTrafficPolicy: {mode: ALLOW_ANY}\n"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mesh-sidecar-injector"},
		Data: map[string]string{"values": "proxyImage: mesh/proxy:test\ndiscoveryAddress: mesh-pilot." + ns + ".svc:15012\n"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := e.startPilot(&pilot.Options{Namespace: ns, Log: slog.New(slog.DiscardHandler)})
	xdsAddr, _ := p.Addr(ctx, "xds")
	dbg, _ := p.Addr(ctx, "debug")
	wh, _ := p.Addr(ctx, "webhook")

	conn, err := grpc.NewClient(xdsAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := &pilottest.ADSClient{NodeID: model.NodeID(model.SidecarProxy, "198.18.251.4", "app-0", ns)}
	if err := client.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	waitCatchAll := func(want, why string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool { return catchAll(c) == want }); err != nil {
			t.Fatalf("%s: the proxy's unknown traffic never went to %s (it goes to %q): %v", why, want, catchAll(client), err)
		}
	}
	update := func(mesh string) {
		t.Helper()
		cm, err := cms.Get(ctx, "mesh", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["mesh"] = mesh
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + dbg.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	rejectedGauge := func() string {
		for _, l := range strings.Split(get("/metrics"), "\n") {
			if strings.HasPrefix(l, "mesh_pilot_mesh_config_rejected ") {
				return strings.TrimPrefix(l, "mesh_pilot_mesh_config_rejected ")
			}
		}
		return "(absent)"
	}
	injectedEnv := func() string {
		t.Helper()
		pod, _ := json.Marshal(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app-1", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}})
		review, _ := json.Marshal(&admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: ns, Operation: admissionv1.Create,
				Object: runtime.RawExtension{Raw: pod}}})
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CA.RootPool(), ServerName: "127.0.0.1"}}}
		resp, err := hc.Post("https://"+wh.String()+"/inject", "application/json", bytes.NewReader(review))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil || !out.Response.Allowed {
			t.Fatalf("injection: %v %+v", err, out.Response)
		}
		return string(out.Response.Patch)
	}

	waitCatchAll(xds.PassthroughCluster, "ALLOW_ANY at start")
	if env := injectedEnv(); strings.Contains(env, "ISTIO_META_DNS_CAPTURE") {
		t.Fatalf("a pod injected before defaultConfig sets DNS capture has it: %s", env)
	}

	// A valid change: the running proxy's stream gets REGISTRY_ONLY.
	update("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\ndefaultConfig:\n  proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}\n")
	waitCatchAll(xds.BlackHoleCluster, "after the ConfigMap said REGISTRY_ONLY")
	if env := injectedEnv(); !strings.Contains(env, "ISTIO_META_DNS_CAPTURE") {
		t.Errorf("a pod injected after defaultConfig set DNS capture lacks ISTIO_META_DNS_CAPTURE: %s", env)
	}
	event := func(reason string) *corev1.Event {
		t.Helper()
		var found *corev1.Event
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			evs, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
				"involvedObject.kind": "ConfigMap", "involvedObject.name": "mesh", "reason": reason}.String()})
			if err != nil || len(evs.Items) == 0 {
				return false, nil
			}
			found = &evs.Items[len(evs.Items)-1]
			return true, nil
		}); err != nil {
			t.Fatalf("no %s Event on ConfigMap %s/mesh: %v", reason, ns, err)
		}
		return found
	}
	if ev := event("MeshConfigApplied"); !strings.Contains(ev.Message, "meshConfig.outboundTrafficPolicy") {
		t.Errorf("MeshConfigApplied Event does not name the changed field: %q", ev.Message)
	}

	// An invalid change (a misspelt field) is refused and said; nothing
	// reaches the proxy.
	update("outboundTrafficPolicy: {mode: ALLOW_ANY}\naccesLogFile: /dev/stdout\n")
	ev := event("MeshConfigRejected")
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "accesLogFile") {
		t.Errorf("rejection Event is %s %q; want a Warning naming accesLogFile", ev.Type, ev.Message)
	}
	if g := rejectedGauge(); g != "1" {
		t.Errorf("mesh_pilot_mesh_config_rejected = %s after a refused change, want 1", g)
	}
	// (REGISTRY_ONLY is the mode's zero value, which JSON leaves out; the
	// refused config has ALLOW_ANY and no defaultConfig.)
	if m := get("/debug/mesh"); strings.Contains(m, "ALLOW_ANY") || !strings.Contains(m, "ISTIO_META_DNS_CAPTURE") {
		t.Errorf("/debug/mesh after a refused change is not the last good config:\n%s", m)
	}
	if got := catchAll(client); got != xds.BlackHoleCluster {
		t.Errorf("after a refused change the proxy's unknown traffic goes to %q, want %s still", got, xds.BlackHoleCluster)
	}

	// Fixed: applied, and the gauge falls back to 0.
	update("outboundTrafficPolicy: {mode: ALLOW_ANY}\naccessLogFile: /dev/stdout\n")
	waitCatchAll(xds.PassthroughCluster, "after the ConfigMap was fixed to ALLOW_ANY")
	if g := rejectedGauge(); g != "0" {
		t.Errorf("mesh_pilot_mesh_config_rejected = %s after a valid change, want 0", g)
	}
}
