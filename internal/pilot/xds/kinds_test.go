package xds

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// The world every kind's case starts from: Bookinfo in "default" (no
// Sidecar: its proxies see every service), "shop" whose Sidecar lets cart
// see only shop, a Service in default without a selector (its endpoints
// written by hand), and the ingress gateway in mesh-system. The proxies
// connected: productpage and reviews (default, one group each), cart
// (shop) and ingress (a router, rebuilt by every config change).
const reachWorldYAML = shopYAML + `
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: default}
spec:
  ports: [{name: http, port: 7070}]
`

// reach is what one change of a kind's object reaches: the push kind
// pilot counts it under (mesh_pilot_push_proxies_total{kind}), how many
// proxies it recomputes (that counter's increase: a total, so a count
// rather than names) and the proxies sent anything (those whose served
// config changed, as pilot's cache holds it and as the ADS clients
// receive it, pilot_xds_pushes agreeing with what they received).
type reach struct {
	push  string // "config" (tracked) or "full"
	regen int
	sent  []string
}

// kindCase creates, changes and deletes one object of a kind.
type kindCase struct {
	create, change string // YAML of the object, then of a changed version
	ns, name       string // the object, for the delete
	// setup is applied before the proxies connect; vm,
	// "namespace/address", connects a fifth proxy "vm" without a pod.
	setup, vm string
	// reach is what each of the three reaches, unless changeReach or
	// deleteReach says otherwise.
	reach                    reach
	changeReach, deleteReach *reach
}

// Not one of these is reached by a tracked change: recomputed for a push
// of a kind without a reach function.
var everyone = reach{push: "full", regen: 4}

// The cases, keyed by group and kind as the kind table is.
var kindCases = map[schema.GroupKind]kindCase{
	{Kind: "Service"}: {
		// A Service in default selecting reviews' pods: the scopes that
		// see default (not cart's) and reviews' inbound side.
		create: `
apiVersion: v1
kind: Service
metadata: {name: admin, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http-admin, port: 9999}]
`, change: `
apiVersion: v1
kind: Service
metadata: {name: admin, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http-admin, port: 9998}]
`, ns: "default", name: "admin",
		reach: reach{"config", 3, []string{"ingress", "productpage", "reviews"}},
	},
	{Kind: "Namespace"}: {
		// The generator reads nothing of a Namespace: only the router,
		// rebuilt by every config change, is recomputed, and nobody is sent anything.
		create: `
apiVersion: v1
kind: Namespace
metadata: {name: team}
`, change: `
apiVersion: v1
kind: Namespace
metadata: {name: team, labels: {team: payments}}
`, name: "team",
		reach: reach{"config", 1, nil},
	},
	{Group: "discovery.k8s.io", Kind: "EndpointSlice"}: {
		// Endpoints of legacy (default): the proxies using them.
		create: `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: legacy-1, namespace: default, labels: {kubernetes.io/service-name: legacy}}
addressType: IPv4
ports: [{name: http, port: 7070}]
endpoints: [{addresses: [198.18.0.98]}]
`, change: `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: legacy-1, namespace: default, labels: {kubernetes.io/service-name: legacy}}
addressType: IPv4
ports: [{name: http, port: 7070}]
endpoints: [{addresses: [198.18.0.97]}]
`, ns: "default", name: "legacy-1",
		reach: reach{"config", 3, []string{"ingress", "productpage", "reviews"}},
	},
	{Kind: "Pod"}: {
		// A pod reviews selects (no proxy runs in it): reviews'
		// endpoints, used by default's proxies and the router.
		create: `
apiVersion: v1
kind: Pod
metadata: {name: reviews-extra, namespace: default, labels: {app: reviews, version: v1}}
spec: {containers: [{name: reviews, image: reviews}]}
status: {podIP: 198.18.0.99}
`, change: `
apiVersion: v1
kind: Pod
metadata: {name: reviews-extra, namespace: default, labels: {app: reviews, version: v1}}
spec: {containers: [{name: reviews, image: reviews}]}
status: {podIP: 198.18.0.100}
`, ns: "default", name: "reviews-extra",
		reach: reach{"config", 3, []string{"ingress", "productpage", "reviews"}},
	},
	{Kind: "Secret"}: {
		// A credential shapes routers only; no Gateway names this one.
		create: `
apiVersion: v1
kind: Secret
metadata: {name: web-cert, namespace: mesh-system}
type: kubernetes.io/tls
`, change: `
apiVersion: v1
kind: Secret
metadata: {name: web-cert, namespace: mesh-system, labels: {rotated: "1"}}
type: kubernetes.io/tls
`, ns: "mesh-system", name: "web-cert",
		reach: reach{"config", 1, nil},
	},
	{Group: "networking.istio.io", Kind: "VirtualService"}: {
		// Routes of reviews: the scopes that see it (not cart's).
		create: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}], timeout: 3s}]
`, change: `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}], timeout: 4s}]
`, ns: "default", name: "reviews",
		reach: reach{"config", 3, []string{"productpage", "reviews"}},
	},
	{Group: "networking.istio.io", Kind: "DestinationRule"}: {
		// Clusters of ratings: the scopes that see it and the router.
		create: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
`, change: `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`, ns: "default", name: "ratings",
		reach: reach{"config", 3, []string{"ingress", "productpage", "reviews"}},
	},
	{Group: "networking.istio.io", Kind: "Gateway"}: {
		// The ingress gateway's listeners only.
		create: `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: mesh-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
`, change: `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: mesh-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
`, ns: "mesh-system", name: "web",
		reach: reach{"config", 1, []string{"ingress"}},
	},
	{Group: "networking.istio.io", Kind: "ServiceEntry"}: {
		// An external host in default: the scopes that see default's
		// services (cart's does not) and the router.
		create: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  location: MESH_EXTERNAL
`, change: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: DNS
  location: MESH_EXTERNAL
`, ns: "default", name: "api",
		reach: reach{"config", 3, []string{"ingress", "productpage", "reviews"}},
	},
	{Group: "networking.istio.io", Kind: "Sidecar"}: {
		// default's proxies' scope.
		create: `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./*"]}]
`, change: `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./ratings.default.svc.cluster.local"]}]
`, ns: "default", name: "default",
		reach: reach{"config", 3, []string{"productpage", "reviews"}},
	},
	{Group: "networking.istio.io", Kind: "WorkloadEntry"}: {
		// A VM in shop joining batch, a Service of shop exported to
		// default only: batch's endpoints, used by default's proxies (not
		// shop's), and the workload behind the proxy at its address (vm,
		// connected before, takes its labels and serves batch's port).
		// Moved to another address, it leaves vm too; deleted there, it
		// reaches vm no more.
		setup: `
apiVersion: v1
kind: Service
metadata:
  name: batch
  namespace: shop
  annotations: {networking.istio.io/exportTo: default}
spec:
  selector: {app: batch}
  ports: [{name: http, port: 7070}]
`,
		vm: "shop/198.18.251.1",
		create: `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: batch-vm, namespace: shop}
spec:
  address: 198.18.251.1
  labels: {app: batch}
`, change: `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: batch-vm, namespace: shop}
spec:
  address: 198.18.251.2
  labels: {app: batch}
`, ns: "shop", name: "batch-vm",
		reach:       reach{"config", 4, []string{"productpage", "reviews", "vm"}},
		deleteReach: &reach{"config", 3, []string{"productpage", "reviews"}},
	},
	{Group: "security.istio.io", Kind: "PeerAuthentication"}: {
		// shop's proxies' inbound side.
		create: `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  mtls: {mode: STRICT}
`, change: `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  mtls: {mode: DISABLE}
`, ns: "shop", name: "strict",
		reach: reach{"config", 2, []string{"cart"}},
	},
	{Group: "security.istio.io", Kind: "AuthorizationPolicy"}: {
		create: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-delete, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
`, change: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-delete, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE, PUT]}}]}]
`, ns: "shop", name: "deny-delete",
		reach: reach{"config", 2, []string{"cart"}},
	},
	{Group: "security.istio.io", Kind: "RequestAuthentication"}: {
		// default's proxies' inbound side (the JWT filter).
		create: `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  jwtRules: [{issuer: "https://issuer.example.com"}]
`, change: `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  jwtRules: [{issuer: "https://other.example.com"}]
`, ns: "default", name: "jwt",
		reach: reach{"config", 3, []string{"productpage", "reviews"}},
	},
	{Group: "telemetry.istio.io", Kind: "Telemetry"}: {
		// shop's proxies' access logs.
		create: `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec:
  accessLogging: [{providers: [{name: envoy}]}]
`, change: `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec:
  accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400"}}]
`, ns: "shop", name: "logs",
		reach: reach{"config", 2, []string{"cart"}},
	},
	// Kinds without a reach function: a full push, every proxy
	// recomputed; none of these changes any of their config.
	{Group: "networking.mesh.io", Kind: "MetaRoute"}: {
		create: `
apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage]
  routes: [{route: [{destination: {host: productpage}}]}]
`, change: `
apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage]
  routes: [{route: [{destination: {host: productpage, port: {number: 9080}}}]}]
`, ns: "default", name: "productpage",
		reach: everyone,
	},
	{Group: "gateway.networking.k8s.io", Kind: "GatewayClass"}: {
		create: `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
`, change: `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other, description: changed}
`, name: "other",
		reach: everyone,
	},
	{Group: "gateway.networking.k8s.io", Kind: "Gateway"}: {
		create: `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
`, change: `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 8080, protocol: HTTP}]
`, ns: "default", name: "web",
		reach: everyone,
	},
	{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}: {
		create: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec: {rules: [{backendRefs: [{name: productpage, port: 9080}]}]}
`, change: `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec: {rules: [{backendRefs: [{name: reviews, port: 9080}]}]}
`, ns: "default", name: "web",
		reach: everyone,
	},
	{Group: "gateway.networking.k8s.io", Kind: "GRPCRoute"}: {
		create: `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: default}
spec: {rules: [{backendRefs: [{name: productpage, port: 9080}]}]}
`, change: `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: default}
spec: {rules: [{backendRefs: [{name: reviews, port: 9080}]}]}
`, ns: "default", name: "rpc",
		reach: everyone,
	},
	{Group: "gateway.networking.k8s.io", Kind: "ReferenceGrant"}: {
		create: `
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-shop, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}]
  to: [{group: "", kind: Service}]
`, change: `
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-shop, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: shop}]
  to: [{group: "", kind: Service}]
`, ns: "default", name: "from-shop",
		reach: everyone,
	},
}

// TestEveryKindReachesWhomItShould creates, changes and deletes an object
// of every kind in pilot's kind table, each in a fresh world with four
// proxies on real ADS streams, and checks each push against the kind's
// case: the push kind and the proxies recomputed on pilot's push
// counters, the proxies sent something (their served config changed, the
// clients received it, and pilot_xds_pushes counts what they received),
// and what every proxy is served equal to a full rebuild. A row of
// model.Kinds without a case fails, as does a case for no row.
func TestEveryKindReachesWhomItShould(t *testing.T) {
	for gk := range kindCases {
		if model.KindOf(gk) == nil {
			t.Errorf("case for %v, which is no row of model.Kinds", gk)
		}
	}
	for _, k := range model.Kinds {
		gk := k.GVK.GroupKind()
		c, ok := kindCases[gk]
		if !ok {
			t.Errorf("kind %v (model.Kinds) has no case in kindCases: add one saying which proxies its changes reach", gk)
			continue
		}
		t.Run(k.GVK.Kind+"."+k.GVK.Group, func(t *testing.T) {
			r := newReachRig(t, c.setup, c.vm)
			changeReach, deleteReach := c.reach, c.reach
			if c.changeReach != nil {
				changeReach = *c.changeReach
			}
			if c.deleteReach != nil {
				deleteReach = *c.deleteReach
			}
			r.step("create", c.reach, func() { r.apply(c.create) })
			r.step("change", changeReach, func() { r.apply(c.change) })
			r.step("delete", deleteReach, func() {
				if len(k.List(&r.w.In)) == 0 {
					t.Fatalf("no %s to delete", k)
				}
				n := len(k.List(&r.w.In))
				k.Put(&r.w.In, c.ns, c.name, nil)
				if len(k.List(&r.w.In)) != n-1 {
					t.Fatalf("delete: no %s %s/%s", k, c.ns, c.name)
				}
			})
		})
	}
}

type reachRig struct {
	t       *testing.T
	w       *pilottest.World
	s       *Server
	version uint64
	ctx     context.Context
	names   []string
	clients map[string]*pilottest.ADSClient
	logs    map[string]*applyLog
}

func newReachRig(t *testing.T, setup, vm string) *reachRig {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(reachWorldYAML + "\n---\n" + setup)); err != nil {
		t.Fatal(err)
	}
	r := &reachRig{t: t, w: w, version: 1, clients: map[string]*pilottest.ADSClient{}, logs: map[string]*applyLog{}}
	r.s = NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	r.s.Update(model.Build(r.version, w.Input()), model.Change{Full: true})
	conn := startADS(t, r.s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	r.ctx = ctx
	proxies := map[string]string{
		"productpage": w.PodProxy(model.SidecarProxy, "productpage-v1"),
		"reviews":     w.PodProxy(model.SidecarProxy, "reviews-v1"),
		"cart":        w.PodProxy(model.SidecarProxy, "cart"),
		"ingress":     w.PodProxy(model.Router, "mesh-ingressgateway"),
	}
	if ns, addr, ok := strings.Cut(vm, "/"); ok {
		proxies["vm"] = model.NodeID(model.SidecarProxy, addr, "vm", ns)
	}
	for name, id := range proxies {
		if id == "" {
			t.Fatalf("no pod for %s", name)
		}
		log := &applyLog{per: map[string]int{}}
		c := &pilottest.ADSClient{NodeID: id, OnApply: log.add}
		if err := c.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		r.names = append(r.names, name)
		r.clients[name], r.logs[name] = c, log
	}
	sort.Strings(r.names)
	for _, n := range r.names {
		if err := r.clients[n].WaitFor(ctx, func(c *pilottest.ADSClient) bool {
			return c.Version(resourcev3.ClusterType) != "" && c.Version(resourcev3.ListenerType) != ""
		}); err != nil {
			t.Fatalf("%s never got its clusters and listeners: %v", n, err)
		}
	}
	r.settle("connect", nil, nil, nil)
	return r
}

func (r *reachRig) apply(yaml string) {
	if err := r.w.AddYAML([]byte(yaml)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *reachRig) received(name string) int {
	n := 0
	for _, t := range []string{"CDS", "EDS", "LDS", "RDS"} {
		n += r.logs[name].get(t)
	}
	return n
}

// pushesSent is pilot's pilot_xds_pushes over every type.
func (r *reachRig) pushesSent() float64 {
	n := 0.0
	for _, t := range []string{"cds", "eds", "lds", "rds", "sds", "ecds"} {
		n += metricValue(r.t, r.s.Metrics.Pushes.WithLabelValues(t))
	}
	return n
}

// settle waits until the clients have the new versions of want, each of
// sent has received a response since before, what pilot counts as sent is
// what the clients received, and every proxy has acknowledged what it
// was sent.
func (r *reachRig) settle(step string, want map[string]map[string]string, sent []string, before map[string]int) {
	r.t.Helper()
	for {
		arrived := true
		for _, n := range sent {
			if r.received(n) == before[n] {
				arrived = false
			}
		}
		for n, types := range want {
			for typ, v := range types {
				if r.clients[n].Version(typ) != v {
					arrived = false
				}
			}
		}
		got := 0
		for _, n := range r.names {
			got += r.received(n)
		}
		synced := true
		for _, row := range r.s.Syncz() {
			for _, ts := range row.Types {
				if ts.Status != StatusSynced && ts.Status != StatusNotSent {
					synced = false
				}
			}
		}
		if arrived && synced && float64(got) == r.pushesSent() {
			return
		}
		select {
		case <-r.ctx.Done():
			r.t.Fatalf("%s: the clients received %d responses, pilot counts %v sent (all acknowledged: %v, the new versions arrived: %v)", step, got, r.pushesSent(), synced, arrived)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// step applies mutate, pushes the new snapshot as a config change (as the
// watcher does for any kind when in doubt) and checks want.
func (r *reachRig) step(step string, want reach, mutate func()) {
	t := r.t
	t.Helper()
	mutate()
	served := map[string][]string{}
	received := map[string]int{}
	for _, n := range r.names {
		served[n] = r.versions(n)
		received[n] = r.received(n)
	}
	regen := func(kind string) float64 { return metricValue(t, r.s.Metrics.ProxiesRegenerated.WithLabelValues(kind)) }
	before := map[string]float64{"config": regen("config"), "full": regen("full"), "eds": regen("eds")}
	r.version++
	snap := model.Build(r.version, r.w.Input())
	r.s.Update(snap, model.Change{Full: true})
	for kind, b := range before {
		got, wantN := regen(kind)-b, 0
		if kind == want.push {
			wantN = want.regen
		}
		if got != float64(wantN) {
			t.Errorf("%s: %v proxies recomputed by a %s push, want %d", step, got, kind, wantN)
		}
	}
	var changed []string
	arrive := map[string]map[string]string{} // the new versions each client is to be sent
	fresh := NewPushContext(snap)
	for _, n := range r.names {
		now := r.versions(n)
		if !slices.Equal(now, served[n]) {
			changed = append(changed, n)
		}
		res, err := r.s.Resources(r.clients[n].NodeID)
		if err != nil {
			t.Fatal(err)
		}
		// Clusters and listeners come whole, so their new versions are
		// sent; endpoints and routes only when what the client asked for
		// changed (not for resources that went with their cluster or
		// listener), so for those the proxy's one response is waited for.
		arrive[n] = map[string]string{}
		for i, typ := range TypeURLs[:4] {
			if now[i] != served[n][i] && (typ == resourcev3.ClusterType || typ == resourcev3.ListenerType) {
				arrive[n][typ] = res.Version(typ)
			}
		}
		if full := generate(t, fresh, r.clients[n].NodeID); !slices.Equal(now, versionsOf(full)) {
			t.Errorf("%s: %s is served config %v, a full rebuild gives %v", step, n, now, versionsOf(full))
		}
	}
	if !slices.Equal(changed, want.sent) {
		t.Errorf("%s: pilot changed the config of %v, want %v", step, changed, want.sent)
	}
	r.settle(step, arrive, changed, received)
	var got []string
	for _, n := range r.names {
		if r.received(n) != received[n] {
			got = append(got, n)
		}
	}
	if !slices.Equal(got, want.sent) {
		t.Errorf("%s: the clients of %v received responses, want %v", step, got, want.sent)
	}
}

// versions are the versions of a proxy's served CDS, EDS, LDS and RDS.
func (r *reachRig) versions(name string) []string {
	res, err := r.s.Resources(r.clients[name].NodeID)
	if err != nil {
		r.t.Fatal(err)
	}
	return versionsOf(res)
}

func versionsOf(res *Resources) []string {
	var out []string
	for _, typ := range TypeURLs[:4] {
		out = append(out, ShortType(typ)+"="+res.Version(typ))
	}
	return out
}
