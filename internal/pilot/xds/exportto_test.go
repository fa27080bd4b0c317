package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	actionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/action/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	meshapi "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/analyze/analyzers"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/resource"
)

// reviews in "default", a client in "default" and one in "shop", an
// ingress gateway in mesh-system, and rules whose exportTo decides who
// sees them.
const exportToYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: mesh-system}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: reviews, image: reviews}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleep, namespace: default}
spec:
  selector: {matchLabels: {app: sleep}}
  template:
    metadata: {labels: {app: sleep}}
    spec: {containers: [{name: sleep, image: sleep}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: cart, image: cart}]}
---
# Kept to default: shop's proxies must not get its subsets.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  exportTo: ["."]
  subsets: [{name: v1, labels: {version: v1}}]
---
# In the client's namespace: applies to shop's proxies only.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-for-shop, namespace: shop}
spec:
  host: reviews.default.svc.cluster.local
  subsets: [{name: shop-v1, labels: {version: v1}}]
---
# Kept to default: shop's proxies route reviews by default.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  exportTo: ["."]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
---
# shop's own rule for reviews, naming a subset only default's rule has.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-from-shop, namespace: shop}
spec:
  hosts: [reviews.default.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  exportTo: ["."]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: mesh-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private-front, namespace: default}
spec:
  hosts: [private.example.com]
  gateways: [mesh-system/ingress]
  exportTo: ["."]
  http: [{route: [{destination: {host: reviews}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public-front, namespace: default}
spec:
  hosts: [public.example.com]
  gateways: [mesh-system/ingress]
  exportTo: [mesh-system]
  http: [{route: [{destination: {host: reviews}}]}]
`

// Pilot honours exportTo on DestinationRules, VirtualServices (sidecars and
// gateways) and ServiceEntries the way Istio does, as served over real ADS
// streams; and analyze's missing-subset finding is reported exactly where
// pilot gives the VirtualService's namespace no cluster for the subset.
func TestExportToOverADS(t *testing.T) { checkExportTo(t, exportToYAML, nil) }

// The same, with the rules kept to their namespace by the mesh config's
// defaults (defaultVirtualServiceExportTo, defaultDestinationRuleExportTo,
// defaultServiceExportTo) instead of their own exportTo: pilot and analyze
// see what they saw.
func TestMeshDefaultExportToOverADS(t *testing.T) {
	y := strings.ReplaceAll(exportToYAML, "  exportTo: [\".\"]\n", "")
	if strings.Contains(y, `exportTo: ["."]`) || !strings.Contains(y, "exportTo: [mesh-system]") {
		t.Fatal("the YAML changed: this test removes its exportTo: [\".\"] lines")
	}
	// defaultServiceExportTo covers Kubernetes Services too: reviews says
	// "*" itself, so it stays visible to shop.
	svc := "kind: Service\nmetadata: {name: reviews, namespace: default}\n"
	if !strings.Contains(y, svc) {
		t.Fatal("the YAML changed: no reviews Service")
	}
	y = strings.Replace(y, svc, "kind: Service\nmetadata: {name: reviews, namespace: default, annotations: {networking.istio.io/exportTo: \"*\"}}\n", 1)
	here := []string{"."}
	checkExportTo(t, y, &meshapi.MeshConfig{DefaultVirtualServiceExportTo: here, DefaultDestinationRuleExportTo: here, DefaultServiceExportTo: here})
}

func checkExportTo(t *testing.T, yaml string, mc *meshapi.MeshConfig) {
	t.Helper()
	w := pilottest.NewWorld("default")
	if err := w.AddYAML([]byte(yaml)); err != nil {
		t.Fatal(err)
	}
	w.In.Mesh = mc
	w.In.Pods = append(w.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ingressgateway-0", Namespace: "mesh-system", Labels: map[string]string{"istio": "ingressgateway"}},
		Status:     corev1.PodStatus{PodIP: "198.18.200.1"},
	})
	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	clients := map[string]*pilottest.ADSClient{}
	for name, typ := range map[string]model.ProxyType{"sleep": model.SidecarProxy, "cart": model.SidecarProxy, "ingressgateway": model.Router} {
		c := &pilottest.ADSClient{NodeID: w.PodProxy(typ, name)}
		if c.NodeID == "" {
			t.Fatalf("no pod %s", name)
		}
		if err := c.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		waitSynced(t, s, c.NodeID, "CDS", "EDS", "LDS", "RDS")
		clients[name] = c
	}
	const reviews = "reviews.default.svc.cluster.local"
	hasCluster := func(proxy, name string) bool {
		return clients[proxy].Resource(resourcev3.ClusterType, name) != nil
	}
	routeClusters := func(proxy, routeName, vhost string) string {
		var rc routev3.RouteConfiguration
		a := clients[proxy].Resource(resourcev3.RouteType, routeName)
		if a == nil || a.UnmarshalTo(&rc) != nil {
			t.Fatalf("%s has no route table %s", proxy, routeName)
		}
		for _, vh := range rc.VirtualHosts {
			if vh.Name == vhost {
				var out []string
				for _, r := range vh.Routes {
					out = append(out, r.Name+">"+r.GetRoute().GetCluster())
				}
				return strings.Join(out, ",")
			}
		}
		return ""
	}

	for _, c := range []struct {
		what, proxy, cluster string
		want                 bool
	}{
		{"default's rule kept to default", "sleep", "outbound|9080|v1|" + reviews, true},
		{"default's rule kept to default", "cart", "outbound|9080|v1|" + reviews, false},
		{"shop's rule for default's service", "cart", "outbound|9080|shop-v1|" + reviews, true},
		{"shop's rule for default's service", "sleep", "outbound|9080|shop-v1|" + reviews, false},
		{"shop's rule for default's service", "ingressgateway", "outbound|9080|shop-v1|" + reviews, false},
		{"a ServiceEntry kept to shop", "cart", "outbound|443||api.example.com", true},
		{"a ServiceEntry kept to shop", "sleep", "outbound|443||api.example.com", false},
	} {
		if got := hasCluster(c.proxy, c.cluster); got != c.want {
			t.Errorf("%s: %s has cluster %s = %v, want %v", c.what, c.proxy, c.cluster, got, c.want)
		}
	}
	if got := routeClusters("sleep", "9080", reviews+":9080"); got != "reviews.default.0>outbound|9080|v1|"+reviews {
		t.Errorf("sleep (default) should route reviews by default's VirtualService, got %q", got)
	}
	// shop sees its own VirtualService, not default's; its subset v1 is
	// not one shop's DestinationRule defines.
	if got := routeClusters("cart", "9080", reviews+":9080"); got != "reviews-from-shop.shop.0>outbound|9080|v1|"+reviews {
		t.Errorf("cart (shop) should route reviews by shop's VirtualService, got %q", got)
	}
	gw := routeClusters("ingressgateway", "http.80", "public.example.com:80")
	if gw == "" {
		t.Errorf("the gateway should serve public.example.com (exported to mesh-system)")
	}
	if got := routeClusters("ingressgateway", "http.80", "private.example.com:80"); got != "" {
		t.Errorf("the gateway serves private.example.com, whose VirtualService is kept to default: %q", got)
	}

	// analyze on the same config: a missing subset is reported exactly
	// where pilot gives the VirtualService's namespace no such cluster.
	raws, err := resource.ReadBytes("exportto.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := analyze.Build(raws, analyze.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mc != nil {
		snap.Mesh = &analyze.Mesh{Config: mc}
	}
	missing := map[string]bool{}
	for _, m := range analyze.Run(snap, analyzers.All()) {
		if m.Type == analyze.ReferencedResourceNotFound && strings.HasSuffix(m.Field, ".subset") {
			missing[m.Resource.Namespace+"/"+m.Resource.Name] = true
		}
	}
	for _, c := range []struct{ vs, proxy, cluster string }{
		{"default/reviews", "sleep", "outbound|9080|v1|" + reviews},
		{"shop/reviews-from-shop", "cart", "outbound|9080|v1|" + reviews},
	} {
		if missing[c.vs] != !hasCluster(c.proxy, c.cluster) {
			t.Errorf("%s: analyze reports a missing subset: %v; pilot gives %s cluster %s: %v", c.vs, missing[c.vs], c.proxy, c.cluster, hasCluster(c.proxy, c.cluster))
		}
	}
	if !missing["shop/reviews-from-shop"] {
		t.Errorf("analyze should report shop's VirtualService naming subset v1, which shop's DestinationRule lacks")
	}
}

// A Thrift service calc in default, clients in default, shop and batch,
// and three MetaRoutes for calc, oldest first: one kept to default, one
// exported to shop, one exported everywhere. Each sends every request to
// a subset of its own, so the route a client gets names the MetaRoute.
const metaRouteExportToYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: batch}
---
apiVersion: v1
kind: Service
metadata: {name: calc, namespace: default}
spec:
  clusterIP: 198.19.0.10
  selector: {app: calc}
  ports: [{name: thrift, port: 9090}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: calc, namespace: default}
spec:
  selector: {matchLabels: {app: calc}}
  template:
    metadata: {labels: {app: calc, version: v1}}
    spec: {containers: [{name: calc, image: calc}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleep, namespace: default}
spec:
  selector: {matchLabels: {app: sleep}}
  template:
    metadata: {labels: {app: sleep}}
    spec: {containers: [{name: sleep, image: sleep}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: cart, image: cart}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: job, namespace: batch}
spec:
  selector: {matchLabels: {app: job}}
  template:
    metadata: {labels: {app: job}}
    spec: {containers: [{name: job, image: job}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calc, namespace: default}
spec:
  host: calc
  subsets: [{name: local, labels: {version: v1}}]
---
# shop's own rule for calc, which shop's proxies take: the only one with
# subset for-shop. No rule defines subset public.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calc, namespace: shop}
spec:
  host: calc.default.svc.cluster.local
  subsets: [{name: for-shop, labels: {version: v1}}]
---
apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: calc-local, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  hosts: [calc]
  exportTo: ["."]
  routes: [{name: local, route: [{destination: {host: calc, subset: local}}]}]
---
apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: calc-for-shop, namespace: default, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  hosts: [calc]
  exportTo: [shop]
  routes: [{name: for-shop, route: [{destination: {host: calc, subset: for-shop}}]}]
---
apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: calc-public, namespace: default, creationTimestamp: "2026-01-03T00:00:00Z"}
spec:
  hosts: [calc]
  routes: [{name: public, route: [{destination: {host: calc, subset: public}}]}]
`

// Pilot applies a MetaRoute to the sidecars of the namespaces its exportTo
// admits, as a VirtualService: of those naming a service, a proxy gets the
// oldest exported to its namespace ("." its own, a name that one, unset
// every one), served over real ADS streams as the Thrift port's
// generic_proxy route table. analyze's missing-subset finding on a
// MetaRoute falls exactly where the proxies that take it have no such
// cluster.
func TestMetaRouteExportToOverADS(t *testing.T) {
	w := pilottest.NewWorld("default")
	if err := w.AddYAML([]byte(metaRouteExportToYAML)); err != nil {
		t.Fatal(err)
	}
	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const calc = "calc.default.svc.cluster.local"
	// route is the route every request to calc takes on proxy's Thrift
	// listener: the generic_proxy catch-all's name and cluster.
	route := func(c *pilottest.ADSClient) string {
		var l listenerv3.Listener
		a := c.Resource(resourcev3.ListenerType, "0.0.0.0_9090")
		if a == nil || a.UnmarshalTo(&l) != nil {
			return ""
		}
		for _, fc := range l.FilterChains {
			if fc.Name != "198.19.0.10_9090" || len(fc.Filters) == 0 {
				continue
			}
			var gp gpv3.GenericProxy
			if fc.Filters[len(fc.Filters)-1].GetTypedConfig().UnmarshalTo(&gp) != nil {
				return "not generic_proxy"
			}
			var ra actionv3.RouteAction
			if gp.GetRouteConfig().GetRoutes().GetOnNoMatch().GetAction().GetTypedConfig().UnmarshalTo(&ra) != nil {
				return "no catch-all route"
			}
			return ra.Name + ">" + ra.GetCluster()
		}
		return ""
	}
	cases := []struct{ mr, proxy, why, subset string }{
		{"default/calc-local", "sleep", `calc-local (exportTo ".") is the oldest, and default's own`, "local"},
		{"default/calc-for-shop", "cart", "calc-local is not exported to shop; calc-for-shop, exported to shop, is older than calc-public", "for-shop"},
		{"default/calc-public", "job", "only calc-public (exportTo unset) is exported to batch", "public"},
	}
	clients := map[string]*pilottest.ADSClient{}
	for _, c := range cases {
		client := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, c.proxy)}
		if err := client.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		clients[c.proxy] = client
		want := c.subset + ">outbound|9090|" + c.subset + "|" + calc
		var got string
		// The listener comes after the clusters of the same push.
		if err := client.WaitFor(ctx, func(a *pilottest.ADSClient) bool { got = route(a); return got == want }); err != nil {
			t.Errorf("%s routes calc by %q, want %q (%s): %v", c.proxy, got, want, c.why, err)
		}
	}

	// analyze on the same config reports a MetaRoute's subset missing
	// exactly where the proxies that take it have no cluster for it:
	// calc-for-shop's from shop, whose rule defines it (default's does
	// not), calc-public's everywhere.
	raws, err := resource.ReadBytes("metaroute-exportto.yaml", []byte(metaRouteExportToYAML))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := analyze.Build(raws, analyze.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	missing := map[string]string{}
	for _, m := range analyze.Run(snap, analyzers.All()) {
		if m.Type == analyze.ReferencedResourceNotFound && strings.HasSuffix(m.Field, ".subset") {
			missing[m.Resource.Namespace+"/"+m.Resource.Name] = m.Text
		}
	}
	for _, c := range cases {
		cluster := "outbound|9090|" + c.subset + "|" + calc
		has := clients[c.proxy].Resource(resourcev3.ClusterType, cluster) != nil
		if (missing[c.mr] != "") == has {
			t.Errorf("%s: analyze reports a missing subset: %q; pilot gives %s cluster %s: %v", c.mr, missing[c.mr], c.proxy, cluster, has)
		}
	}
	if missing["default/calc-public"] == "" {
		t.Errorf("analyze should report calc-public's subset public, which no DestinationRule defines")
	}
}
