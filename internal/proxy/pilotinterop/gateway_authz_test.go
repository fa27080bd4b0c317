package pilotinterop

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/proxy/agent"
)

// TestGatewayAuthorizationPolicy: an AuthorizationPolicy selecting the
// ingress gateway's pods holds on the gateway's HTTP servers. Before, pilot
// wrote no authorization filter on gateway listeners, so a DENY (or an
// ALLOW) there changed nothing: every request was routed.
func TestGatewayAuthorizationPolicy(t *testing.T) {
	w, _ := world(t, "bookinfo-gateway.yaml")
	if err := w.AddYAML([]byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-login, namespace: mesh-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/login"]}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	port := startGateway(t, pushContext(w))
	get := func(path string) int {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/login"); code != 403 {
		t.Errorf("GET /login through the gateway: %d; want 403 (the DENY policy)", code)
	}
	// Routed on to productpage, which this test does not run: not refused by the policy.
	if code := get("/productpage"); code == 403 {
		t.Errorf("GET /productpage through the gateway: 403; the policy denies /login only")
	}
}

// startGateway serves pilot's config for the ingress gateway pod to a
// mesh-proxy whose listeners are moved to loopback; it returns the port of
// the HTTP server pilot built for Bookinfo's Gateway (port 80, bound as 80
// when no Service maps it).
func startGateway(t *testing.T, pc *xds.PushContext) uint32 {
	t.Helper()
	node := model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system")
	p, err := model.ParseNodeID(node)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pc.Generate(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	listeners := onLoopback(t, r.Items(resourcev3.ListenerType))
	var port uint32
	for _, res := range listeners {
		l := res.(*listenerv3.Listener)
		if port == 0 && l.GetDefaultFilterChain() != nil {
			port = l.GetAddress().GetSocketAddress().GetPortValue()
		}
	}
	if port == 0 {
		t.Fatal("pilot built no plaintext gateway listener")
	}
	ads := startADS(t)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  r.Items(resourcev3.ClusterType),
		resourcev3.EndpointType: r.Items(resourcev3.EndpointType),
		resourcev3.ListenerType: listeners,
		resourcev3.RouteType:    r.Items(resourcev3.RouteType),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ads.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
	px, err := agent.New(agent.Options{XDSAddress: ads.addr, NodeID: node, AdminAddress: "127.0.0.1:0",
		XDSBackoff: [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := px.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); px.Close() })
	ads.waitACK(t, resourcev3.ListenerType, resourcev3.RouteType)
	return port
}
