package xds

import (
	"context"
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// A namespace "shop" whose Sidecar lets its proxies see only their own
// namespace, beside bookinfo in "default".
const shopYAML = `
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
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
`

// watchedProxy is a real ADS client and what it has been sent.
type watchedProxy struct {
	name string
	c    *pilottest.ADSClient
	log  *applyLog
}

func (p *watchedProxy) total() int {
	n := 0
	for _, t := range []string{"CDS", "EDS", "LDS", "RDS"} {
		n += p.log.get(t)
	}
	return n
}

// Each tracked kind of config change regenerates exactly the proxies it
// can reach (counted on /metrics as mesh_pilot_push_proxies_total, the
// shared configs it builds as mesh_pilot_push_groups_built_total; the two
// default-namespace proxies share one), the others are sent nothing, and
// everyone is served what a full rebuild would give.
func TestConfigChangeReachesOnlyAffectedProxies(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(shopYAML)); err != nil {
		t.Fatal(err)
	}
	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), nil)
	version := uint64(1)
	s.Update(model.Build(version, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)

	proxies := map[string]*watchedProxy{}
	for _, name := range []string{"productpage-v1", "reviews-v1", "cart"} {
		p := &watchedProxy{name: name, log: &applyLog{per: map[string]int{}}}
		p.c = &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, name), OnApply: p.log.add}
		if p.c.NodeID == "" {
			t.Fatalf("no pod %s", name)
		}
		if err := p.c.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		proxies[name] = p
	}
	for _, p := range proxies {
		waitSynced(t, s, p.c.NodeID, "CDS", "EDS", "LDS")
	}
	if proxies["cart"].c.Resource(resourcev3.ClusterType, "outbound|9080||reviews.default.svc.cluster.local") != nil {
		t.Fatal("shop's Sidecar should hide reviews from cart")
	}

	regenerated := func(kind string) float64 {
		return metricValue(t, s.Metrics.ProxiesRegenerated.WithLabelValues(kind))
	}
	built := func(kind string) float64 {
		return metricValue(t, s.Metrics.GroupsBuilt.WithLabelValues(kind))
	}
	// apply applies yaml, pushes, waits for want to reach the proxies that
	// should see it and checks who was regenerated and sent anything.
	// Every kind in pilot's table is created (and the policy and routing
	// kinds deleted) by some step below: a kind added to model.Kinds
	// without a step here fails the test.
	created, deleted := map[string]bool{}, map[string]bool{}
	var change func(step, kind string, regen, groups int, affected []string, arrived func(*pilottest.ADSClient) bool, mutate func())
	apply := func(step, yaml, kind string, regen, groups int, affected []string, arrived func(*pilottest.ADSClient) bool) {
		t.Helper()
		for _, line := range strings.Split(yaml, "\n") {
			if k, ok := strings.CutPrefix(line, "kind: "); ok {
				created[strings.TrimSpace(k)] = true
			}
		}
		change(step, kind, regen, groups, affected, arrived, func() {
			if err := w.AddYAML([]byte(yaml)); err != nil {
				t.Fatal(err)
			}
		})
	}
	remove := func(step, objKind, ns, name, kind string, regen, groups int, affected []string, arrived func(*pilottest.ADSClient) bool) {
		t.Helper()
		deleted[objKind] = true
		change(step, kind, regen, groups, affected, arrived, func() {
			if !w.Delete(objKind, ns, name) {
				t.Fatalf("%s: no %s %s/%s to delete", step, objKind, ns, name)
			}
		})
	}
	change = func(step, kind string, regen, groups int, affected []string, arrived func(*pilottest.ADSClient) bool, mutate func()) {
		t.Helper()
		mutate()
		before := map[string]int{}
		for n, p := range proxies {
			before[n] = p.total()
		}
		regenBefore, builtBefore, fullBefore := regenerated(kind), built(kind), regenerated("full")
		version++
		snap := model.Build(version, w.Input())
		s.Update(snap, model.Change{Full: true})
		if kind != "full" && regenerated("full") != fullBefore {
			t.Errorf("%s: fell back to a full push", step)
		}
		if got := regenerated(kind) - regenBefore; got != float64(regen) {
			t.Errorf("%s: %s push regenerated %v proxies, want %d", step, kind, got, regen)
		}
		if got := built(kind) - builtBefore; got != float64(groups) {
			t.Errorf("%s: %s push built %v configs, want %d", step, kind, got, groups)
		}
		// What is served, carried over or not, is what a full rebuild makes.
		fresh := NewPushContext(snap)
		for n, p := range proxies {
			served, err := s.Resources(p.c.NodeID)
			if err != nil {
				t.Fatal(err)
			}
			want := generate(t, fresh, p.c.NodeID)
			for _, typ := range TypeURLs[:4] {
				if served.Version(typ) != want.Version(typ) {
					t.Errorf("%s: %s is served %s %v, a full rebuild gives %v", step, n, ShortType(typ), served.Names(typ), want.Names(typ))
				}
			}
		}
		for _, n := range affected {
			p := proxies[n]
			if err := p.c.WaitFor(ctx, arrived); err != nil {
				t.Fatalf("%s: %s never got the change: %v", step, n, err)
			}
			waitSynced(t, s, p.c.NodeID, "CDS", "EDS", "LDS")
			if p.total() == before[n] {
				t.Errorf("%s: %s was sent nothing", step, n)
			}
		}
		for n, p := range proxies {
			if !contains(affected, n) && p.total() != before[n] {
				t.Errorf("%s: %s cannot be affected but was sent %d responses", step, n, p.total()-before[n])
			}
		}
	}
	route := func(port, text string) func(*pilottest.ADSClient) bool {
		return func(c *pilottest.ADSClient) bool {
			return strings.Contains(fmt.Sprint(c.Resource(resourcev3.RouteType, port)), text)
		}
	}

	apply("VirtualService for reviews", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, route("9080", "outbound|9080|v2|reviews"))

	apply("DestinationRule for ratings", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return c.Resource(resourcev3.ClusterType, "outbound|9080|v1|ratings.default.svc.cluster.local") != nil
	})

	apply("VirtualService for cart", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - route: [{destination: {host: cart}}]
    rewrite: {uri: /cart-v2}
`, "config", 3, 3, []string{"productpage-v1", "reviews-v1", "cart"}, route("8080", "/cart-v2"))

	apply("PeerAuthentication in shop", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  mtls: {mode: STRICT}
`, "config", 1, 1, []string{"cart"}, func(c *pilottest.ADSClient) bool {
		var l listenerv3.Listener
		if a := c.Resource(resourcev3.ListenerType, VirtualInbound); a == nil || a.UnmarshalTo(&l) != nil {
			return false
		}
		for _, fc := range l.FilterChains {
			if m := fc.GetFilterChainMatch(); m.GetDestinationPort().GetValue() == 8080 && m.GetTransportProtocol() != "tls" {
				return false
			}
		}
		return true
	})

	apply("AuthorizationPolicy in default", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-delete, namespace: default}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return strings.Contains(fmt.Sprint(c.Resource(resourcev3.ListenerType, VirtualInbound)), "deny-delete")
	})

	apply("Sidecar in default", `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./*"]}]
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return c.Resource(resourcev3.ClusterType, "outbound|8080||cart.shop.svc.cluster.local") == nil
	})

	// A new Service in shop: only shop's proxies see it (default's Sidecar
	// now hides shop).
	apply("Service in shop", `
apiVersion: v1
kind: Service
metadata: {name: pay, namespace: shop}
spec:
  ports: [{name: http, port: 8081}]
`, "config", 1, 1, []string{"cart"}, func(c *pilottest.ADSClient) bool {
		return c.Resource(resourcev3.ClusterType, "outbound|8081||pay.shop.svc.cluster.local") != nil
	})

	// A Service selecting reviews' pods: default's proxies see it, and
	// reviews-v1 serves it (a new inbound port). (productpage-v1 and reviews-v1 never share a
	// group: their inbound clusters name the services they serve, for the metrics.)
	apply("Service selecting reviews", `
apiVersion: v1
kind: Service
metadata: {name: reviews-admin, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http-admin, port: 9999}]
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return c.Resource(resourcev3.ClusterType, "outbound|9999||reviews-admin.default.svc.cluster.local") != nil
	})
	inbound9999 := func(c *pilottest.ADSClient) bool { return inbound(c, 9999) }
	if !inbound9999(proxies["reviews-v1"].c) || inbound9999(proxies["productpage-v1"].c) {
		t.Errorf("inbound port 9999: reviews-v1 %v (want true), productpage-v1 %v (want false)", inbound9999(proxies["reviews-v1"].c), inbound9999(proxies["productpage-v1"].c))
	}

	// A ServiceEntry reaches the scopes that see its hosts: default's
	// (shop's Sidecar hides default). Its workloadSelector picks VMs only
	// (MESH_EXTERNAL hosts give no proxy inbound ports).
	apply("ServiceEntry in default", `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  location: MESH_EXTERNAL
  workloadSelector: {labels: {app: api-vm}}
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return c.Resource(resourcev3.ClusterType, "outbound|80||api.example.com") != nil
	})

	// exportTo hides it from its own namespace, and default's Sidecar only
	// admits default: nobody sees it, nobody is recomputed.
	apply("ServiceEntry in shop exported to default", `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ledger, namespace: shop}
spec:
  hosts: [ledger.example.com]
  exportTo: [default]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
`, "config", 0, 0, nil, nil)

	// A mesh-internal ServiceEntry selecting cart's workloads: cart sees it
	// and serves it (a new inbound port).
	apply("ServiceEntry selecting cart", `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart-vm, namespace: shop}
spec:
  hosts: [cart-vm.shop.internal]
  ports: [{number: 8082, name: http-vm, protocol: HTTP}]
  resolution: STATIC
  location: MESH_INTERNAL
  workloadSelector: {labels: {app: cart}}
`, "config", 1, 1, []string{"cart"}, func(c *pilottest.ADSClient) bool {
		return c.Resource(resourcev3.ClusterType, "outbound|8082||cart-vm.shop.internal") != nil
	})

	// A VM in shop connects before its WorkloadEntry exists: no labels, so
	// no inbound side yet.
	vm := &watchedProxy{name: "vm-1", log: &applyLog{per: map[string]int{}}}
	vm.c = &pilottest.ADSClient{NodeID: model.NodeID(model.SidecarProxy, "198.18.251.1", "vm-1", "shop"), OnApply: vm.log.add}
	if err := vm.c.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, s, vm.c.NodeID, "CDS", "EDS", "LDS")
	proxies["vm-1"] = vm

	// Its WorkloadEntry joins cart and cart-vm (an endpoint change: cart is
	// sent EDS only) and gives the VM proxy cart's labels, so it serves
	// cart's ports and shares cart's config: nothing is built afresh.
	cartNonEDS := proxies["cart"].total() - proxies["cart"].log.get("EDS")
	apply("WorkloadEntry for the VM", `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: shop}
spec:
  address: 198.18.251.1
  labels: {app: cart}
  serviceAccount: cart-vm
`, "config", 2, 0, []string{"cart", "vm-1"}, func(c *pilottest.ADSClient) bool {
		return contains(endpointsOf(c, "outbound|8080||cart.shop.svc.cluster.local"), "198.18.251.1") &&
			contains(endpointsOf(c, "outbound|8082||cart-vm.shop.internal"), "198.18.251.1")
	})
	if got := proxies["cart"].total() - proxies["cart"].log.get("EDS"); got != cartNonEDS {
		t.Errorf("WorkloadEntry for the VM: cart was sent %d non-EDS responses, want EDS only", got-cartNonEDS)
	}
	if !inbound(vm.c, 8080) || !inbound(vm.c, 8082) {
		t.Errorf("the VM proxy does not serve cart's ports 8080 and 8082")
	}

	// A Service in shop exported only to default: nobody sees it (default's
	// Sidecar admits default only), but it may select shop's workloads, so
	// shop's group is rebuilt; it selects none of them, so nothing is sent.
	apply("Service in shop exported to default", `
apiVersion: v1
kind: Service
metadata:
  name: batch
  namespace: shop
  annotations: {networking.istio.io/exportTo: default}
spec:
  selector: {app: batch}
  ports: [{name: http, port: 7070}]
`, "config", 2, 1, nil, nil)

	// A second VM's WorkloadEntry joins batch, whose endpoints no proxy
	// uses: only the VM itself is reached, as the workload behind its
	// proxy, and now serves batch's port.
	vm2 := &watchedProxy{name: "vm-2", log: &applyLog{per: map[string]int{}}}
	vm2.c = &pilottest.ADSClient{NodeID: model.NodeID(model.SidecarProxy, "198.18.251.3", "vm-2", "shop"), OnApply: vm2.log.add}
	if err := vm2.c.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, s, vm2.c.NodeID, "CDS", "EDS", "LDS")
	proxies["vm-2"] = vm2
	apply("WorkloadEntry for a VM serving batch", `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-2, namespace: shop}
spec:
  address: 198.18.251.3
  labels: {app: batch}
`, "config", 1, 1, []string{"vm-2"}, func(c *pilottest.ADSClient) bool { return inbound(c, 7070) })

	// A WorkloadEntry picked by api.example.com's selector: a DNS cluster
	// carries its endpoints inline, so default's clusters change (CDS).
	apply("WorkloadEntry for api.example.com", `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-vm-1, namespace: default}
spec:
  address: 198.18.251.2
  labels: {app: api-vm}
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return strings.Contains(fmt.Sprint(c.Resource(resourcev3.ClusterType, "outbound|80||api.example.com")), "198.18.251.2")
	})

	// A RequestAuthentication reaches its namespace's inbound side (the JWT filter).
	apply("RequestAuthentication in default", `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  jwtRules: [{issuer: "https://issuer.example.com"}]
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return strings.Contains(fmt.Sprint(c.Resource(resourcev3.ListenerType, VirtualInbound)), "jwt_authn")
	})

	// A Telemetry reaches its namespace's proxies (their listeners' access logs).
	apply("Telemetry in default", `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: default}
spec:
  accessLogging: [{providers: [{name: envoy}]}]
`, "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return strings.Contains(fmt.Sprint(c.Resource(resourcev3.ListenerType, VirtualInbound)), "access_loggers")
	})

	// Kinds that reach no sidecar: a Gateway and its credential shape only
	// routers, a Namespace's own fields no proxy config.
	apply("Gateway in default", `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
`, "config", 0, 0, nil, nil)
	apply("Secret in default", `
apiVersion: v1
kind: Secret
metadata: {name: web-cert, namespace: default}
type: kubernetes.io/tls
`, "config", 0, 0, nil, nil)
	apply("Namespace labelled", `
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: payments}}
`, "config", 0, 0, nil, nil)

	// Deleting reaches whom the object reaches now: default's two proxies
	// no longer share (reviews serves reviews-admin), and shop has the VMs.
	remove("delete the AuthorizationPolicy", "AuthorizationPolicy", "default", "deny-delete", "config", 2, 2, []string{"productpage-v1", "reviews-v1"}, func(c *pilottest.ADSClient) bool {
		return !strings.Contains(fmt.Sprint(c.Resource(resourcev3.ListenerType, VirtualInbound)), "deny-delete")
	})
	remove("delete the PeerAuthentication", "PeerAuthentication", "shop", "strict", "config", 3, 2, []string{"cart", "vm-1", "vm-2"}, func(c *pilottest.ADSClient) bool {
		if c.NodeID == proxies["vm-2"].c.NodeID {
			return inboundPlaintext(c, 7070)
		}
		return inboundPlaintext(c, 8080)
	})
	remove("delete the VirtualService for cart", "VirtualService", "shop", "cart", "config", 3, 2, []string{"cart", "vm-1", "vm-2"}, func(c *pilottest.ADSClient) bool {
		return !route("8080", "/cart-v2")(c)
	})
	remove("delete the Gateway", "Gateway", "default", "web", "config", 0, 0, nil, nil)

	// A Pod no Service selects and no proxy runs in reaches nobody; an
	// EndpointSlice of the selector-less Service pay reaches the proxies that
	// see pay (shop's), with its endpoints only.
	apply("Pod no Service selects", `
apiVersion: v1
kind: Pod
metadata: {name: tools, namespace: default, labels: {app: tools}}
spec: {containers: [{name: tools, image: tools}]}
status: {podIP: 198.18.0.99}
`, "config", 0, 0, nil, nil)
	apply("EndpointSlice for pay", `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: pay-1, namespace: shop, labels: {kubernetes.io/service-name: pay}}
addressType: IPv4
ports: [{name: http, port: 8081}]
endpoints: [{addresses: [198.18.0.98]}]
`, "config", 3, 0, []string{"cart", "vm-1", "vm-2"}, func(c *pilottest.ADSClient) bool {
		return strings.Contains(fmt.Sprint(c.Resource(resourcev3.EndpointType, "outbound|8081||pay.shop.svc.cluster.local")), "198.18.0.98")
	})

	// The Gateway API kinds and MetaRoute have no reach function: a change
	// to one is a full push, every proxy regenerated and each of the four
	// groups they form (productpage, reviews, cart with vm-1, vm-2)
	// rebuilt, and nothing sent: no sidecar config changes (productpage's
	// port is HTTP, which MetaRoutes do not route).
	for _, doc := range []string{`
apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage]
  routes: [{route: [{destination: {host: productpage}}]}]
`, `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: mesh}
spec: {controllerName: istio.io/gateway-controller}
`, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec: {rules: [{backendRefs: [{name: productpage, port: 9080}]}]}
`, `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: default}
spec: {rules: [{backendRefs: [{name: productpage, port: 9080}]}]}
`, `
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-shop, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}]
  to: [{group: "", kind: Service}]
`} {
		kind, _, _ := strings.Cut(strings.TrimSpace(strings.SplitAfter(doc, "kind: ")[1]), "\n")
		apply(kind, doc, "full", len(proxies), 4, nil, nil)
	}

	for _, k := range model.Kinds {
		if !created[k.GVK.Kind] {
			t.Errorf("kind %s (model.Kinds) is created by no step of this test: add one saying which proxies it reaches", k.GVK.Kind)
		}
	}
	for _, k := range []string{"AuthorizationPolicy", "PeerAuthentication", "VirtualService", "Gateway"} {
		if !deleted[k] {
			t.Errorf("kind %s is deleted by no step of this test", k)
		}
	}

	// Carried-over config is still whole.
	if got := fmt.Sprint(proxies["productpage-v1"].c.Resource(resourcev3.RouteType, "9080")); !strings.Contains(got, "outbound|9080|v2|reviews") {
		t.Errorf("productpage lost its reviews route: %s", got)
	}
	var cl clusterv3.Cluster
	if a := proxies["cart"].c.Resource(resourcev3.ClusterType, "outbound|8080||cart.shop.svc.cluster.local"); a == nil || a.UnmarshalTo(&cl) != nil {
		t.Errorf("cart lost its own cluster")
	}
}

// inbound reports whether c's inbound listener has a filter chain for port.
func inbound(c *pilottest.ADSClient, port uint32) bool {
	var l listenerv3.Listener
	if a := c.Resource(resourcev3.ListenerType, VirtualInbound); a == nil || a.UnmarshalTo(&l) != nil {
		return false
	}
	for _, fc := range l.FilterChains {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == port {
			return true
		}
	}
	return false
}

// inboundPlaintext reports whether c's inbound listener takes plaintext on port.
func inboundPlaintext(c *pilottest.ADSClient, port uint32) bool {
	var l listenerv3.Listener
	if a := c.Resource(resourcev3.ListenerType, VirtualInbound); a == nil || a.UnmarshalTo(&l) != nil {
		return false
	}
	for _, fc := range l.FilterChains {
		if m := fc.GetFilterChainMatch(); m.GetDestinationPort().GetValue() == port && m.GetTransportProtocol() != "tls" {
			return true
		}
	}
	return false
}
