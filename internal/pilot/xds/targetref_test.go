package xds

import (
	"context"
	"fmt"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// Two gateways of shop (the pods of the Gateway API Gateways front and
// back, as mesh deploys them: labelled with their Gateway's name, each
// selected by a server on port 80), a sidecar workload cart, and three
// DENY policies: one naming Gateway front by targetRefs, one naming the
// Service cart (a waypoint's target, which selects no sidecar), and one
// with neither, for the whole namespace.
const targetRefYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers: [{name: cart, image: cart, ports: [{containerPort: 8080}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: front, namespace: shop}
spec:
  selector: {app: front-gw}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: back, namespace: shop}
spec:
  selector: {app: back-gw}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart-edge, namespace: shop}
spec:
  hosts: [cart.example.com]
  gateways: [front, back]
  http: [{route: [{destination: {host: cart}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-front, namespace: shop}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: front}]
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-cart-service, namespace: shop}
spec:
  targetRefs: [{kind: Service, name: cart}]
  action: DENY
  rules: [{to: [{operation: {methods: [PUT]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all-shop, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [TRACE]}}]}]
`

// An AuthorizationPolicy with targetRefs selects exactly its target, as
// served over real ADS streams: the policy naming Gateway front is in the
// RBAC of front's pod only, not of back's (same namespace, same servers)
// nor of the sidecar cart; the one naming the Service cart is in no
// proxy's (sidecars ignore waypoint targets, as Istio's do); the
// namespace-wide one is in all three, so the absences are no listener
// missing its RBAC. Before #26 a policy with targetRefs and no selector
// applied to every workload of its namespace.
func TestTargetRefsOverADS(t *testing.T) {
	w := pilottest.NewWorld("default")
	if err := w.AddYAML([]byte(targetRefYAML)); err != nil {
		t.Fatal(err)
	}
	for i, gw := range []string{"front", "back"} {
		w.In.Pods = append(w.In.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: gw + "-gw-0", Namespace: "shop",
				Labels: map[string]string{"app": gw + "-gw", gatewayNameLabel: gw}},
			Status: corev1.PodStatus{PodIP: fmt.Sprintf("198.18.200.%d", i+1)},
		})
	}
	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)

	// The RBAC a proxy is served on its HTTP listener: the gateways' port
	// 80, the sidecar's inbound listener.
	listener := map[string]string{"front-gw": "0.0.0.0_80", "back-gw": "0.0.0.0_80", "cart": VirtualInbound}
	clients := map[string]*pilottest.ADSClient{}
	for name, typ := range map[string]model.ProxyType{"front-gw": model.Router, "back-gw": model.Router, "cart": model.SidecarProxy} {
		c := &pilottest.ADSClient{NodeID: w.PodProxy(typ, name)}
		if c.NodeID == "" {
			t.Fatalf("no pod %s", name)
		}
		if err := c.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		clients[name] = c
	}
	for name, c := range clients {
		waitSynced(t, s, c.NodeID, "CDS", "EDS", "LDS")
		if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool { return c.Resource(resourcev3.ListenerType, listener[name]) != nil }); err != nil {
			t.Fatalf("%s never got listener %s: %v", name, listener[name], err)
		}
	}
	for _, c := range []struct {
		proxy, policy string
		want          bool
	}{
		{"front-gw", "deny-front", true},
		{"back-gw", "deny-front", false},
		{"cart", "deny-front", false},
		{"front-gw", "deny-cart-service", false},
		{"back-gw", "deny-cart-service", false},
		{"cart", "deny-cart-service", false},
		{"front-gw", "deny-all-shop", true},
		{"back-gw", "deny-all-shop", true},
		{"cart", "deny-all-shop", true},
	} {
		l := fmt.Sprint(clients[c.proxy].Resource(resourcev3.ListenerType, listener[c.proxy]))
		if got := strings.Contains(l, "ns[shop]-policy["+c.policy+"]-rule[0]"); got != c.want {
			t.Errorf("%s's listener %s has the RBAC policy of %s: %v, want %v", c.proxy, listener[c.proxy], c.policy, got, c.want)
		}
	}
}
