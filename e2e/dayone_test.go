package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// dayOneApps are the workloads of TestDayOneTraffic: the echo server (a
// WebSocket endpoint at /ws) behind an HTTP-named port; details behind a
// port that declares no protocol; the client the test's requests start in;
// and leaver, a classic-layout pod whose app calls details two seconds into
// its own shutdown.
const dayOneApps = `
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: mesh.dev/mesh-sample:demo
        args: [--role=echo]
        ports: [{containerPort: 9080}]
        readinessProbe: {httpGet: {path: /health, port: 9080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: legacy}
spec:
  selector: {app: legacy}
  ports: [{port: 8000, targetPort: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy}
spec:
  replicas: 1
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers:
      - name: legacy
        image: mesh.dev/mesh-sample:demo
        args: [--role=details]
        readinessProbe: {httpGet: {path: /health, port: 9080}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers:
      - name: client
        image: mesh.dev/mesh-sample:demo
        args: [--role=echo]
        readinessProbe: {httpGet: {path: /health, port: 9080}, periodSeconds: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: legacy}
spec:
  hosts: [legacy]
  http:
  - match: [{uri: {prefix: /legacy/}}]
    rewrite: {uri: /details/}
    route: [{destination: {host: legacy}}]
  - route: [{destination: {host: legacy}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: echo}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [echo.dayone.example]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-ingress}
spec:
  hosts: [echo.dayone.example]
  gateways: [echo]
  http: [{route: [{destination: {host: echo}}]}]
`

const leaverPod = `
apiVersion: v1
kind: Pod
metadata:
  name: leaver
  labels: {app: leaver}
  annotations:
    sidecar.istio.io/nativeSidecar: "false"
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: leaver
    image: mesh.dev/mesh-sample:demo
    args: [--role=echo, --on-sigterm-fetch=http://legacy:8000/details/7, --on-sigterm-delay=2s]
    readinessProbe: {httpGet: {path: /health, port: 9080}, periodSeconds: 1}
`

// TestDayOneTraffic walks what an app moving from Istio meets in its first
// hour, on the sandbox runtime with real processes, in a STRICT namespace:
//   - a WebSocket echo through two sidecars, and through the ingress
//     gateway and a sidecar, with no config beyond the routes;
//   - a Service port that declares no protocol gets HTTP routing (a
//     VirtualService rewrite applies, which a TCP proxy cannot do);
//   - a Sidecar with outboundTrafficPolicy REGISTRY_ONLY cuts its
//     workload, and only it, off from a server no Service names, while
//     mesh Services stay reachable;
//   - a classic-layout pod deleted: its app calls out two seconds into its
//     own shutdown, while its proxy drains, and the call succeeds.
func TestDayOneTraffic(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	ctx := context.Background()
	if out, err := e.mesh(3*time.Minute, "install", "--set", "profile=demo", "-y", "--readiness-timeout", "60s"); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	e.adopt("mesh-system", 0)
	const ns = "dayone"
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"mesh-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e.apply(ns, []byte("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\nspec:\n  mtls:\n    mode: STRICT\n"))
	e.apply(ns, []byte(dayOneApps))
	e.adopt(ns, 2)
	client := e.pod(ns, "app=client")
	echoPod := e.pod(ns, "app=echo")
	gateway := e.pod("mesh-system", "app=mesh-ingressgateway")
	clusterIP := func(name string) string {
		s, err := e.cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Spec.ClusterIP
	}
	echoAddr := net.JoinHostPort(clusterIP("echo"), "80")
	legacyAddr := net.JoinHostPort(clusterIP("legacy"), "8000")

	t.Run("WebSocket", func(t *testing.T) {
		e := e.on(t)
		fromClient := func() (net.Conn, error) { return e.rt.DialFromPod(ctx, client.UID, echoAddr) }
		e.waitFor("a WebSocket echo from client through both sidecars", time.Minute, func() (bool, string) {
			return wsEcho(fromClient, "ws://echo/ws", "hello from client")
		})
		viaGateway := func() (net.Conn, error) {
			return net.DialTimeout("tcp", net.JoinHostPort(gateway.Status.PodIP, "8080"), 5*time.Second)
		}
		e.waitFor("a WebSocket echo through the ingress gateway", time.Minute, func() (bool, string) {
			return wsEcho(viaGateway, "ws://echo.dayone.example/ws", "hello through the gateway")
		})
	})

	t.Run("UnnamedPortGetsHTTPRouting", func(t *testing.T) {
		e := e.on(t)
		// Through a TCP proxy /legacy/1 reaches details as it is, which
		// answers 404: only the HTTP chain's rewrite makes it /details/1.
		hc := e.fromPod(client, legacyAddr)
		e.waitFor("legacy's VirtualService rewrite applied on a port with no declared protocol", time.Minute, func() (bool, string) {
			code, body, err := get(hc, "http://legacy:8000/legacy/1")
			return err == nil && code == http.StatusOK && strings.Contains(body, `"id":"1"`), fmt.Sprintf("%d %q %v", code, body, err)
		})
	})

	t.Run("RegistryOnly", func(t *testing.T) {
		e := e.on(t)
		var hits atomic.Int64
		l, err := net.Listen("tcp", net.JoinHostPort(e.rt.Gateway(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits.Add(1)
			io.WriteString(w, "outside the registry\n")
		})}
		go srv.Serve(l)
		defer srv.Close()
		outside := l.Addr().String()
		url := "http://" + outside + "/"
		if code, body, err := get(e.fromPod(client, outside), url); err != nil || code != http.StatusOK {
			t.Fatalf("client to %s under ALLOW_ANY: %d %q %v, want 200 passed through", outside, code, body, err)
		}
		e.apply(ns, []byte(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client-registry-only}
spec:
  workloadSelector: {labels: {app: client}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`))
		e.waitFor("client cut off from the server no Service names", time.Minute, func() (bool, string) {
			code, body, err := get(e.fromPod(client, outside), url)
			return err != nil || code == http.StatusBadGateway, fmt.Sprintf("still %d %q", code, body)
		})
		before := hits.Load()
		for range 3 {
			if code, body, err := get(e.fromPod(client, outside), url); err == nil && code != http.StatusBadGateway {
				t.Errorf("client to %s under REGISTRY_ONLY: %d %q, want the connection closed or 502", outside, code, body)
			}
		}
		if got := hits.Load() - before; got != 0 {
			t.Errorf("the server outside the registry got %d requests from client under REGISTRY_ONLY, want 0", got)
		}
		if code, body, err := get(e.fromPod(client, echoAddr), "http://echo/"); err != nil || code != http.StatusOK {
			t.Errorf("client to the echo Service under REGISTRY_ONLY: %d %q %v, want 200 (a mesh Service is in the registry)", code, body, err)
		}
		if code, body, err := get(e.fromPod(echoPod, outside), url); err != nil || code != http.StatusOK {
			t.Errorf("echo (no Sidecar selects it) to %s: %d %q %v, want 200: the Sidecar is client's only", outside, code, body, err)
		}
	})

	t.Run("DrainKeepsOutboundOpen", func(t *testing.T) {
		e := e.on(t)
		e.apply(ns, []byte(leaverPod))
		e.waitFor("leaver Ready with its classic-layout sidecar", 2*time.Minute, func() (bool, string) {
			p := e.podByName(ns, "leaver")
			return p != nil && podReady(p) && len(p.Spec.Containers) == 2, fmt.Sprintf("%+v", p)
		})
		// Its proxy must be able to call legacy before the shutdown test
		// means anything: the first call of a new sidecar waits for config.
		leaver := e.podByName(ns, "leaver")
		e.waitFor("leaver reaching legacy", time.Minute, func() (bool, string) {
			code, body, err := get(e.fromPod(leaver, legacyAddr), "http://legacy:8000/details/6")
			return err == nil && code == http.StatusOK, fmt.Sprintf("%d %q %v", code, body, err)
		})
		if err := e.cs.CoreV1().Pods(ns).Delete(ctx, "leaver", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitFor("leaver gone", time.Minute, func() (bool, string) {
			_, err := e.cs.CoreV1().Pods(ns).Get(ctx, "leaver", metav1.GetOptions{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		log, err := os.ReadFile(filepath.Join(e.rt.LogDir(), ns+"_leaver_leaver.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), "GET http://legacy:8000/details/7: 200 OK") {
			t.Errorf("leaver's call two seconds into its shutdown did not get through its draining proxy; its log:\n%s", log)
		}
	})
}

// on is e reporting to t, a subtest: its waits and failures end the
// subtest, not the test.
func (e *env) on(t *testing.T) *env {
	sub := *e
	sub.t = t
	return &sub
}

// wsEcho opens a WebSocket to url over a connection from dial, sends msg
// and reports whether the same message came back.
func wsEcho(dial func() (net.Conn, error), url, msg string) (bool, string) {
	conn, err := dial()
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	cfg, err := websocket.NewConfig(url, "http://dayone.test")
	if err != nil {
		return false, err.Error()
	}
	ws, err := websocket.NewClient(cfg, conn)
	if err != nil {
		return false, "handshake: " + err.Error()
	}
	defer ws.Close()
	if err := websocket.Message.Send(ws, msg); err != nil {
		return false, "send: " + err.Error()
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil {
		return false, "receive: " + err.Error()
	}
	return got == msg, fmt.Sprintf("sent %q, got %q", msg, got)
}
