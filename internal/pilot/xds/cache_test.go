package xds

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// deltaStream is a raw delta ADS stream for checking exactly what pilot sends.
type deltaStream struct {
	t  *testing.T
	st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
}

func openDelta(t *testing.T, s *Server, node string, subs map[string][]string) *deltaStream {
	t.Helper()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(startADS(t, s)).DeltaAggregatedResources(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	d := &deltaStream{t: t, st: st}
	first := true
	for _, typ := range TypeURLs[:4] {
		names, ok := subs[typ]
		if !ok {
			continue
		}
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typ, ResourceNamesSubscribe: names}
		if first {
			req.Node = &corev3.Node{Id: node}
			first = false
		}
		d.send(req)
	}
	return d
}

func (d *deltaStream) send(req *discoveryv3.DeltaDiscoveryRequest) {
	d.t.Helper()
	if err := d.st.Send(req); err != nil {
		d.t.Fatal(err)
	}
}

// recv returns the next response and ACKs it.
func (d *deltaStream) recv() *discoveryv3.DeltaDiscoveryResponse {
	d.t.Helper()
	resp, err := d.st.Recv()
	if err != nil {
		d.t.Fatal(err)
	}
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce})
	return resp
}

func names(resp *discoveryv3.DeltaDiscoveryResponse) []string {
	var out []string
	for _, r := range resp.Resources {
		out = append(out, r.Name)
	}
	sort.Strings(out)
	return out
}

func TestDeltaPushCarriesOnlyWhatChanged(t *testing.T) {
	w, _ := bookinfo(t)
	s := NewServer(context.Background(), nil, nil, nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	node := w.PodProxy(model.SidecarProxy, "productpage-v1")
	d := openDelta(t, s, node, map[string][]string{resourcev3.ClusterType: {"*"}, resourcev3.EndpointType: {"*"}})
	initial := map[string]int{}
	for i := 0; i < 2; i++ {
		r := d.recv()
		initial[ShortType(r.TypeUrl)] = len(r.Resources)
	}
	if initial["CDS"] < 5 || initial["EDS"] < 4 {
		t.Fatalf("first responses too small: %v", initial)
	}
	waitSynced(t, s, node, "CDS", "EDS")

	// One more ratings pod: the next response is EDS with ratings' load
	// assignment alone, not the whole set again.
	w.In.Pods = append(w.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings-v1-extra", Namespace: "default", Labels: map[string]string{"app": "ratings", "version": "v1"}},
		Status:     corev1.PodStatus{PodIP: "198.18.100.101"},
	})
	s.Update(model.Build(2, w.Input()), model.Change{EndpointHosts: map[string]bool{"ratings.default.svc.cluster.local": true}})
	r := d.recv()
	if ShortType(r.TypeUrl) != "EDS" || fmt.Sprint(names(r)) != "[outbound|9080||ratings.default.svc.cluster.local]" || len(r.RemovedResources) != 0 {
		t.Fatalf("endpoint change sent %s %v (removed %v), want EDS with ratings only", ShortType(r.TypeUrl), names(r), r.RemovedResources)
	}

	// Deleting the details Service removes its cluster and load assignment
	// by name, and sends nothing else.
	in := w.Input()
	var kept []*corev1.Service
	for _, svc := range in.Services {
		if svc.Name != "details" {
			kept = append(kept, svc)
		}
	}
	in.Services = kept
	s.Update(model.Build(3, in), model.Change{Full: true})
	removed := map[string][]string{}
	for i := 0; i < 2; i++ {
		r := d.recv()
		if len(r.Resources) != 0 {
			t.Errorf("%s: service removal re-sent %v", ShortType(r.TypeUrl), names(r))
		}
		removed[ShortType(r.TypeUrl)] = r.RemovedResources
	}
	want := "[outbound|9080||details.default.svc.cluster.local]"
	if fmt.Sprint(removed["CDS"]) != want || fmt.Sprint(removed["EDS"]) != want {
		t.Fatalf("removed = %v, want details' cluster and endpoints", removed)
	}
}

func TestDeltaNamedSubscriptions(t *testing.T) {
	w, _ := bookinfo(t)
	s := NewServer(context.Background(), nil, nil, nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	node := w.PodProxy(model.SidecarProxy, "productpage-v1")
	reviews := "outbound|9080||reviews.default.svc.cluster.local"
	ratings := "outbound|9080||ratings.default.svc.cluster.local"
	d := openDelta(t, s, node, map[string][]string{resourcev3.EndpointType: {reviews}})
	if r := d.recv(); fmt.Sprint(names(r)) != "["+reviews+"]" {
		t.Fatalf("subscribed to reviews, got %v", names(r))
	}
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{ratings}})
	if r := d.recv(); fmt.Sprint(names(r)) != "["+ratings+"]" {
		t.Fatalf("subscribed to ratings as well, got %v", names(r))
	}
	// Unsubscribed and subscribed again: sent again, as the client dropped it.
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesUnsubscribe: []string{reviews}})
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{reviews}})
	if r := d.recv(); fmt.Sprint(names(r)) != "["+reviews+"]" {
		t.Fatalf("re-subscribed to reviews, got %v", names(r))
	}
}

func TestProxiesShareConfigOnlyWhenInputsMatch(t *testing.T) {
	w, pc := bookinfo(t)
	v1 := generate(t, pc, w.PodProxy(model.SidecarProxy, "reviews-v1"))
	v2 := generate(t, pc, w.PodProxy(model.SidecarProxy, "reviews-v2"))
	for i, typ := range TypeURLs[:4] {
		if v1.gens[i] != v2.gens[i] {
			t.Errorf("%s: two reviews pods with the same inputs got separately generated config", ShortType(typ))
		}
	}
	if v1.ServiceAccount != "bookinfo-reviews" || v1.Namespace != "default" {
		t.Errorf("identity = %s/%s", v1.Namespace, v1.ServiceAccount)
	}

	// STRICT mTLS for reviews-v2 alone: its inbound listener differs, so
	// it must not be served reviews-v1's.
	if err := w.AddYAML([]byte(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: v2-strict, namespace: default}
spec:
  selector: {matchLabels: {version: v2}}
  mtls: {mode: STRICT}
`)); err != nil {
		t.Fatal(err)
	}
	pc = NewPushContext(model.Build(2, w.Input()))
	v1 = generate(t, pc, w.PodProxy(model.SidecarProxy, "reviews-v1"))
	v2 = generate(t, pc, w.PodProxy(model.SidecarProxy, "reviews-v2"))
	plaintext := func(r *Resources) bool {
		l := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, VirtualInbound)
		for _, fc := range l.FilterChains {
			if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == 9080 && fc.GetFilterChainMatch().GetTransportProtocol() != "tls" {
				return true
			}
		}
		return false
	}
	if !plaintext(v1) || plaintext(v2) {
		t.Fatalf("plaintext 9080 chain: reviews-v1 %v (want true), reviews-v2 %v (want false)", plaintext(v1), plaintext(v2))
	}
}

// With a send budget smaller than one response, responses go one at a time
// and every proxy still gets its whole config.
func TestSendBudgetSerialisesLargeResponses(t *testing.T) {
	old := MaxInFlightBytes
	MaxInFlightBytes = 1
	t.Cleanup(func() { MaxInFlightBytes = old })
	w := pilottest.Synthetic(200, 2, 4, false)
	s := NewServer(context.Background(), nil, nil, nil)
	s.Update(w.Snapshot(1), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	const proxies = 8
	var done atomic.Int64
	var seen [proxies]atomic.Int64
	for i := 0; i < proxies; i++ {
		pod := w.In.Pods[i*len(w.In.Pods)/proxies]
		c := &pilottest.DeltaClient{NodeID: model.NodeID(model.SidecarProxy, pod.Status.PodIP, pod.Name, pod.Namespace),
			OnApply: func(typ string, n int) {
				if typ == resourcev3.ClusterType && n > 200 && seen[i].Add(1) == 1 {
					done.Add(1)
				}
			}}
		if err := c.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
	for done.Load() < proxies {
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d proxies got their clusters under a 1-byte budget", done.Load(), proxies)
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	b := s.cache.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used < 0 {
		t.Errorf("budget went negative: %d", b.used)
	}
}

// A rule matching on client labels makes route tables per workload: the
// productpage sidecar gets the rule, the details sidecar (same namespace,
// same Sidecar scope) does not, though both share everything else.
func TestSourceLabelRulesSplitSharedRoutes(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
`)); err != nil {
		t.Fatal(err)
	}
	pc := NewPushContext(model.Build(1, w.Input()))
	clusters := func(r *Resources) []string {
		var out []string
		for _, rt := range routeFor(t, r, "9080", "reviews.default").Routes {
			out = append(out, rt.GetRoute().GetCluster())
		}
		return out
	}
	pp := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	details := generate(t, pc, w.PodProxy(model.SidecarProxy, "details-v1"))
	if got := fmt.Sprint(clusters(pp)); got != "[outbound|9080|v2|reviews.default.svc.cluster.local outbound|9080|v1|reviews.default.svc.cluster.local]" {
		t.Errorf("productpage's reviews routes = %s", got)
	}
	if got := fmt.Sprint(clusters(details)); got != "[outbound|9080|v1|reviews.default.svc.cluster.local]" {
		t.Errorf("details' reviews routes = %s", got)
	}
}

// Over SotW, endpoints are not sent whole: an endpoint change of one
// service sends that service's load assignment alone.
func TestSotWEndpointPushCarriesOnlyChangedAssignments(t *testing.T) {
	w, _ := bookinfo(t)
	s := NewServer(context.Background(), nil, nil, nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	node := w.PodProxy(model.SidecarProxy, "productpage-v1")
	reviews := "outbound|9080||reviews.default.svc.cluster.local"
	ratings := "outbound|9080||ratings.default.svc.cluster.local"
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(startADS(t, s)).StreamAggregatedResources(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: resourcev3.EndpointType, ResourceNames: []string{reviews, ratings}}
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	recv := func() []string {
		t.Helper()
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range resp.Resources {
			var cla endpointv3.ClusterLoadAssignment
			if err := a.UnmarshalTo(&cla); err != nil {
				t.Fatal(err)
			}
			got = append(got, cla.ClusterName)
		}
		sort.Strings(got)
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce, ResourceNames: req.ResourceNames}
		if err := st.Send(ack); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := fmt.Sprint(recv()); got != "["+ratings+" "+reviews+"]" {
		t.Fatalf("first EDS response = %s, want both", got)
	}
	w.In.Pods = append(w.In.Pods, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings-v1-extra", Namespace: "default", Labels: map[string]string{"app": "ratings", "version": "v1"}},
		Status:     corev1.PodStatus{PodIP: "198.18.100.102"},
	})
	s.Update(model.Build(2, w.Input()), model.Change{EndpointHosts: map[string]bool{"ratings.default.svc.cluster.local": true}})
	if got := fmt.Sprint(recv()); got != "["+ratings+"]" {
		t.Fatalf("EDS response after a ratings pod = %s, want ratings alone", got)
	}
}
