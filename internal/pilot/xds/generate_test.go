package xds

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const fixtures = "../../../../shared/fixtures/bookinfo"

// bookinfo is the Bookinfo app in "default" plus an ingress gateway pod,
// with the given networking rules applied on top.
func bookinfo(t *testing.T, rules ...string) (*pilottest.World, *PushContext) {
	t.Helper()
	w := pilottest.NewWorld("default")
	if err := w.AddFile(filepath.Join(fixtures, "bookinfo.yaml")); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if err := w.AddFile(filepath.Join(fixtures, "networking", r)); err != nil {
			t.Fatal(err)
		}
	}
	w.AddNamespace("mesh-system", nil)
	w.In.Pods = append(w.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh-ingressgateway-0", Namespace: "mesh-system", Labels: map[string]string{"istio": "ingressgateway"}},
		Status:     corev1.PodStatus{PodIP: "198.18.200.1"},
	})
	return w, NewPushContext(model.Build(1, w.Input()))
}

func generate(t *testing.T, pc *PushContext, nodeID string) *Resources {
	t.Helper()
	p, err := model.ParseNodeID(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pc.Generate(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("generated config for %s is not valid Envoy config: %v", nodeID, err)
	}
	return r
}

func find[T any](t *testing.T, r *Resources, typeURL, name string) T {
	t.Helper()
	for _, it := range r.items(typeURL) {
		if it.name == name {
			return it.msg.(T)
		}
	}
	t.Fatalf("no %s named %q; have %v", ShortType(typeURL), name, r.Names(typeURL))
	var zero T
	return zero
}

func routeFor(t *testing.T, r *Resources, routeName, vhPrefix string) *routev3.VirtualHost {
	t.Helper()
	rc := find[*routev3.RouteConfiguration](t, r, resourcev3.RouteType, routeName)
	for _, vh := range rc.VirtualHosts {
		if strings.HasPrefix(vh.Name, vhPrefix) {
			return vh
		}
	}
	t.Fatalf("route %s has no virtual host %s*", routeName, vhPrefix)
	return nil
}

func TestSidecarDefaultBookinfo(t *testing.T) {
	w, pc := bookinfo(t)
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))

	for _, name := range []string{
		"outbound|9080||reviews.default.svc.cluster.local",
		"outbound|9080||details.default.svc.cluster.local",
		"inbound|9080||", BlackHoleCluster, PassthroughCluster,
	} {
		find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, name)
	}
	cla := find[*endpointv3.ClusterLoadAssignment](t, r, resourcev3.EndpointType, "outbound|9080||reviews.default.svc.cluster.local")
	if n := len(cla.Endpoints[0].LbEndpoints); n != 3 {
		t.Errorf("reviews has %d endpoints, want 3 (v1, v2, v3)", n)
	}
	for _, name := range []string{"0.0.0.0_9080", VirtualOutbound, VirtualInbound} {
		find[*listenerv3.Listener](t, r, resourcev3.ListenerType, name)
	}
	vh := routeFor(t, r, "9080", "reviews.default.svc.cluster.local")
	if got := vh.Routes[0].GetRoute().GetCluster(); got != "outbound|9080||reviews.default.svc.cluster.local" {
		t.Errorf("default route goes to %q", got)
	}
	if !contains(vh.Domains, "reviews") || !contains(vh.Domains, "reviews.default.svc.cluster.local:9080") {
		t.Errorf("domains %v lack the short name or FQDN:port", vh.Domains)
	}
	if len(r.Names(resourcev3.SecretType)) != 0 {
		t.Error("secrets generated without a secret source")
	}
}

func TestSubsetsAndHeaderRouting(t *testing.T) {
	w, pc := bookinfo(t, "destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml")
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))

	vh := routeFor(t, r, "9080", "reviews.default.svc.cluster.local")
	if len(vh.Routes) != 2 {
		t.Fatalf("reviews has %d routes, want 2", len(vh.Routes))
	}
	h := vh.Routes[0].Match.Headers
	if len(h) != 1 || h[0].Name != "end-user" || h[0].GetStringMatch().GetExact() != "jason" {
		t.Errorf("first route should match end-user: jason, got %v", h)
	}
	if c := vh.Routes[0].GetRoute().GetCluster(); c != "outbound|9080|v2|reviews.default.svc.cluster.local" {
		t.Errorf("jason goes to %q, want subset v2", c)
	}
	if c := vh.Routes[1].GetRoute().GetCluster(); c != "outbound|9080|v3|reviews.default.svc.cluster.local" {
		t.Errorf("others go to %q, want subset v3", c)
	}
	cla := find[*endpointv3.ClusterLoadAssignment](t, r, resourcev3.EndpointType, "outbound|9080|v2|reviews.default.svc.cluster.local")
	eps := cla.Endpoints[0].LbEndpoints
	if len(eps) != 1 {
		t.Fatalf("subset v2 has %d endpoints, want 1", len(eps))
	}
	pod := pc.Snap.PodByIP(eps[0].GetEndpoint().Address.GetSocketAddress().Address)
	if pod == nil || pod.Labels["version"] != "v2" {
		t.Errorf("subset v2 endpoint is not the reviews-v2 pod: %v", pod)
	}
}

func TestWeightsFaultsAndTimeouts(t *testing.T) {
	w, pc := bookinfo(t, "destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml",
		"virtual-service-ratings-test-delay.yaml", "fault-injection-details-v1.yaml")
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))

	wc := routeFor(t, r, "9080", "reviews.").Routes[0].GetRoute().GetWeightedClusters()
	if wc == nil || len(wc.Clusters) != 2 || wc.Clusters[0].Weight.GetValue() != 80 || wc.Clusters[1].Weight.GetValue() != 20 {
		t.Fatalf("reviews should split 80/20, got %v", wc)
	}
	ratings := routeFor(t, r, "9080", "ratings.")
	delayed := ratings.Routes[0]
	var f faultv3.HTTPFault
	if err := delayed.TypedPerFilterConfig[faultFilterName].UnmarshalTo(&f); err != nil {
		t.Fatalf("jason's ratings route has no fault config: %v", err)
	}
	if d := f.Delay.GetFixedDelay().AsDuration().Seconds(); d != 7 {
		t.Errorf("delay is %vs, want 7s", d)
	}
	details := routeFor(t, r, "9080", "details.")
	if err := details.Routes[0].TypedPerFilterConfig[faultFilterName].UnmarshalTo(&f); err != nil {
		t.Fatalf("details route has no fault: %v", err)
	}
	if f.Abort.GetHttpStatus() != 555 {
		t.Errorf("details abort status %d, want 555", f.Abort.GetHttpStatus())
	}
	// Every outbound HTTP listener must carry the fault filter, or the
	// per-route fault config is silently ignored.
	l := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, "0.0.0.0_9080")
	var hcm hcmv3.HttpConnectionManager
	if err := l.DefaultFilterChain.Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	// Istio's order: the metadata exchange first, the stats filter just before the router.
	var names []string
	for _, hf := range hcm.HttpFilters {
		names = append(names, hf.Name)
	}
	if want := []string{mxFilterName, faultFilterName, statsFilterName, "envoy.filters.http.router"}; !slices.Equal(names, want) {
		t.Errorf("http filters %v, want %v", names, want)
	}
}

func TestGatewayRoutes(t *testing.T) {
	w, pc := bookinfo(t, "bookinfo-gateway.yaml")
	r := generate(t, pc, model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system"))
	l := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, "0.0.0.0_8080")
	if l.GetBindToPort() != nil && !l.GetBindToPort().Value {
		t.Error("gateway listener must bind its port")
	}
	vh := routeFor(t, r, "http.8080", "*")
	var paths []string
	for _, rt := range vh.Routes {
		paths = append(paths, rt.Match.GetPath()+rt.Match.GetPrefix())
		if c := rt.GetRoute().GetCluster(); c != "outbound|9080||productpage.default.svc.cluster.local" {
			t.Errorf("route %s goes to %q", rt.Name, c)
		}
	}
	if strings.Join(paths, ",") != "/productpage,/static,/login,/logout,/api/v1/products" {
		t.Errorf("gateway paths %v", paths)
	}
	find[*endpointv3.ClusterLoadAssignment](t, r, resourcev3.EndpointType, "outbound|9080||productpage.default.svc.cluster.local")
	_ = w
}

func TestSidecarScopingShrinksConfig(t *testing.T) {
	w, pc := bookinfo(t)
	other := pilottest.NewWorld("other")
	_ = other
	if err := w.AddYAML([]byte(`
apiVersion: v1
kind: Service
metadata: {name: billing, namespace: finance}
spec:
  selector: {app: billing}
  ports: [{name: http, port: 8000}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./*"]
`)); err != nil {
		t.Fatal(err)
	}
	pc = NewPushContext(model.Build(2, w.Input()))
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	for _, n := range r.Names(resourcev3.ClusterType) {
		if strings.Contains(n, "finance") {
			t.Errorf("Sidecar egress ./* still lets %s through", n)
		}
	}
	find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, "outbound|9080||reviews.default.svc.cluster.local")

	// Without the Sidecar the other namespace is visible.
	w.In.Sidecars = nil
	pc = NewPushContext(model.Build(3, w.Input()))
	r = generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, "outbound|8000||billing.finance.svc.cluster.local")
}

func TestPeerAuthenticationAndAuthorization(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]}}]
    to: [{operation: {methods: ["GET"]}}]
`)); err != nil {
		t.Fatal(err)
	}
	pc := NewPushContext(model.Build(2, w.Input()))
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "reviews-v1"))
	in := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, VirtualInbound)
	var chains []*listenerv3.FilterChain
	for _, fc := range in.FilterChains {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == 9080 {
			chains = append(chains, fc)
		}
	}
	if len(chains) != 1 || chains[0].FilterChainMatch.TransportProtocol != "tls" || chains[0].TransportSocket == nil {
		t.Fatalf("STRICT should leave one TLS filter chain on 9080, got %d", len(chains))
	}
	var hcm hcmv3.HttpConnectionManager
	if err := chains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	var rbac rbachttp.RBAC
	if hcm.HttpFilters[0].Name != mxFilterName {
		t.Fatalf("first inbound filter is %s, want the metadata exchange", hcm.HttpFilters[0].Name)
	}
	if err := hcm.HttpFilters[1].GetTypedConfig().UnmarshalTo(&rbac); err != nil {
		t.Fatalf("first inbound filter after the metadata exchange is not RBAC: %v", err)
	}
	js, _ := protojson.Marshal(&rbac)
	if !strings.Contains(string(js), "spiffe://cluster.local/ns/default/sa/bookinfo-productpage") || !strings.Contains(string(js), "GET") {
		t.Errorf("RBAC lacks the principal or method: %s", js)
	}

	// productpage has no policy: permissive, plaintext and TLS both accepted, no RBAC.
	w.In.PeerAuthentications = nil
	pc = NewPushContext(model.Build(3, w.Input()))
	r = generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	in = find[*listenerv3.Listener](t, r, resourcev3.ListenerType, VirtualInbound)
	n := 0
	for _, fc := range in.FilterChains {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == 9080 {
			n++
		}
	}
	if n != 2 {
		t.Errorf("PERMISSIVE should give a TLS and a plaintext chain, got %d", n)
	}
}

func TestServiceEntryAndWorkloadEntry(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-db, namespace: default}
spec:
  hosts: [db.example.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  endpoints: [{address: 198.18.250.1}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-vm, namespace: default}
spec:
  address: 198.18.250.2
  labels: {app: ratings, version: v1}
  serviceAccount: bookinfo-ratings
`)); err != nil {
		t.Fatal(err)
	}
	pc := NewPushContext(model.Build(2, w.Input()))
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	cla := find[*endpointv3.ClusterLoadAssignment](t, r, resourcev3.EndpointType, "outbound|5432||db.example.internal")
	if a := cla.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().Address; a != "198.18.250.1" {
		t.Errorf("ServiceEntry endpoint %s", a)
	}
	find[*listenerv3.Listener](t, r, resourcev3.ListenerType, "0.0.0.0_5432")
	ratings := find[*endpointv3.ClusterLoadAssignment](t, r, resourcev3.EndpointType, "outbound|9080||ratings.default.svc.cluster.local")
	var addrs []string
	for _, ep := range ratings.Endpoints[0].LbEndpoints {
		addrs = append(addrs, ep.GetEndpoint().Address.GetSocketAddress().Address)
	}
	if !contains(addrs, "198.18.250.2") {
		t.Errorf("the VM WorkloadEntry did not join ratings: %v", addrs)
	}
	// The VM's own proxy gets the inbound side of ratings.
	vm := generate(t, pc, model.NodeID(model.SidecarProxy, "198.18.250.2", "ratings-vm", "default"))
	find[*clusterv3.Cluster](t, vm, resourcev3.ClusterType, "inbound|9080||")
}

func TestConfigDumpGolden(t *testing.T) {
	w, pc := bookinfo(t, "destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml")
	r := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	dump, err := r.ConfigDump()
	if err != nil {
		t.Fatal(err)
	}
	got, err := MarshalConfigDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "productpage-jason.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("config dump differs from %s; rerun with -update if the change is intended", golden)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestEveryHCMUpgradesWebSocket: Istio lets WebSocket upgrades through every
// HTTP connection manager it writes (sidecar inbound and outbound, gateways);
// one without upgrade_configs answers an Upgrade with 403.
func TestEveryHCMUpgradesWebSocket(t *testing.T) {
	w, pc := bookinfo(t, "bookinfo-gateway.yaml")
	kinds := map[string]int{}
	for _, node := range []string{
		w.PodProxy(model.SidecarProxy, "productpage-v1"),
		model.NodeID(model.Router, "198.18.200.1", "mesh-ingressgateway-0", "mesh-system"),
	} {
		r := generate(t, pc, node)
		for _, it := range r.items(resourcev3.ListenerType) {
			l := it.msg.(*listenerv3.Listener)
			chains := append([]*listenerv3.FilterChain{l.DefaultFilterChain}, l.FilterChains...)
			for _, fc := range chains {
				for _, f := range fc.GetFilters() {
					if f.Name != hcmFilterName {
						continue
					}
					var h hcmv3.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
						t.Fatal(err)
					}
					kinds[l.TrafficDirection.String()+" "+node[:strings.Index(node, "~")]]++
					ws := false
					for _, u := range h.UpgradeConfigs {
						ws = ws || u.UpgradeType == "websocket" && (u.Enabled == nil || u.Enabled.Value)
					}
					if !ws {
						t.Errorf("%s listener %s chain %q: HCM %s has no websocket upgrade (%v)", node, l.Name, fc.GetName(), h.StatPrefix, h.UpgradeConfigs)
					}
				}
			}
		}
	}
	for _, k := range []string{"INBOUND sidecar", "OUTBOUND sidecar", "OUTBOUND router"} {
		if kinds[k] == 0 {
			t.Errorf("no HCM seen on %s listeners (saw %v): the test checks nothing there", k, kinds)
		}
	}
}
