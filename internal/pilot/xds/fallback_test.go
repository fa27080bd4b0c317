package xds

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/fallback"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/syncstatus"
)

const fallbackYAML = `
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews}
spec:
  replicas: 2
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews}}
    spec: {containers: [{name: reviews, image: reviews}, {name: mesh-proxy, image: mesh/proxy}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleep}
spec:
  selector: {matchLabels: {app: sleep}}
  template:
    metadata: {labels: {app: sleep}}
    spec: {containers: [{name: sleep, image: sleep}]}
`

// A pod whose node agent reports sidecar fallback (docs/fallback.md) is
// reached by its peers in plaintext and stays in their load balancing:
// over ADS, its endpoint loses the tlsMode match that makes auto-mTLS
// clients use mTLS, and is HEALTHY though its EndpointSlice says not ready
// (its proxy fails the readiness probe while its app serves). When the
// fallback ends with the proxy still not ready, the endpoint is the
// mesh's again: mTLS, and unhealthy as the slice says.
func TestFallbackEndpointOverADS(t *testing.T) {
	w := pilottest.NewWorld("default")
	if err := w.AddYAML([]byte(fallbackYAML)); err != nil {
		t.Fatal(err)
	}
	in := w.Input()
	var target *corev1.Pod
	for _, p := range in.Pods {
		if p.Name == "reviews-0" {
			target = p
		}
	}
	if target == nil {
		t.Fatal("no pod reviews-0")
	}
	setFallback := func(status corev1.ConditionStatus, reason string) {
		target.Status.Conditions = []corev1.PodCondition{{Type: fallback.ConditionType, Status: status, Reason: reason}}
		target.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "reviews", Ready: true}, {Name: fallback.ProxyContainer, Ready: false}}
		notReady := false
		for _, es := range in.EndpointSlices {
			for i := range es.Endpoints {
				if es.Endpoints[i].TargetRef.Name == target.Name {
					es.Endpoints[i].Conditions.Ready = &notReady
				}
			}
		}
	}
	setFallback(corev1.ConditionTrue, fallback.ReasonExited)

	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), nil)
	s.Update(model.Build(1, in), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	c := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, "sleep")}
	if err := c.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	const cluster = "outbound|9080||reviews.default.svc.cluster.local"
	// endpoints gives each endpoint of the cluster as "health tlsMode",
	// keyed by address.
	endpoints := func(c *pilottest.ADSClient) map[string]string {
		a := c.Resource(resourcev3.EndpointType, cluster)
		if a == nil {
			return nil
		}
		var cla endpointv3.ClusterLoadAssignment
		if a.UnmarshalTo(&cla) != nil {
			return nil
		}
		out := map[string]string{}
		for _, l := range cla.Endpoints {
			for _, ep := range l.LbEndpoints {
				mode := ep.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"].GetFields()["tlsMode"].GetStringValue()
				out[ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = fmt.Sprintf("%s %s", ep.HealthStatus, mode)
			}
		}
		return out
	}
	other := ""
	for _, p := range in.Pods {
		if p.Name == "reviews-1" {
			other = p.Status.PodIP
		}
	}
	check := func(what, want string) {
		t.Helper()
		mtls := corev3.HealthStatus_HEALTHY.String() + " istio"
		if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool {
			eps := endpoints(c)
			return eps[target.Status.PodIP] == want && eps[other] == mtls
		}); err != nil {
			t.Fatalf("%s: endpoints %v, want %q at %s (the pod) and %q at %s: %v", what, endpoints(c), want, target.Status.PodIP, mtls, other, err)
		}
	}
	check("in fallback", corev3.HealthStatus_HEALTHY.String()+" ")
	// /debug/syncz (mesh proxy-status) lists the pod, whose proxy is not
	// connected, as in fallback; the connected client is not.
	var rows []string
	for _, r := range s.Syncz() {
		rows = append(rows, fmt.Sprintf("%s fallback=%q disconnected=%v", syncstatus.NodeName(r.Proxy), r.Fallback, r.Disconnected))
	}
	if got, want := strings.Join(rows, "; "), `reviews-0.default fallback="ProxyExited" disconnected=true; sleep-0.default fallback="" disconnected=false`; got != want {
		t.Errorf("syncz rows %s, want %s", got, want)
	}

	setFallback(corev1.ConditionFalse, fallback.ReasonReady)
	s.Update(model.Build(2, in), model.Change{EndpointHosts: map[string]bool{"reviews.default.svc.cluster.local": true}})
	check("fallback ended, proxy not ready yet", corev3.HealthStatus_UNHEALTHY.String()+" istio")
	for _, r := range s.Syncz() {
		if r.Fallback != "" || r.Disconnected {
			t.Errorf("syncz row %+v after the fallback ended", r)
		}
	}
}
