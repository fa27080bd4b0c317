package xds

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// An endpoint-only push keeps each proxy's group key while its pod is the
// same object (keyFor). A pod whose labels change is an endpoint-only
// change too (the watcher classifies pods so), and its proxy's key must
// be derived again: here the new label makes an AuthorizationPolicy
// select reviews-v1, which must reach its inbound listener over ADS, and
// what it is served must equal a full rebuild. With the memo kept across
// a changed pod, reviews-v1 keeps its old config.
func TestEndpointPushRederivesARelabelledPodsKey(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gold-only, namespace: default}
spec:
  selector: {matchLabels: {tier: gold}}
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	c := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, "reviews-v1")}
	if err := c.Start(ctx, conn); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, s, c.NodeID, "CDS", "EDS", "LDS")
	policy := func(c *pilottest.ADSClient) bool {
		return strings.Contains(fmt.Sprint(c.Resource(resourcev3.ListenerType, VirtualInbound)), "gold-only")
	}
	if policy(c) {
		t.Fatal("gold-only applies to reviews-v1 before it is labelled tier: gold")
	}
	// An endpoint-only push that leaves the pod alone first, so the memo
	// is in use.
	s.Update(model.Build(2, w.Input()), model.Change{EndpointHosts: map[string]bool{"ratings.default.svc.cluster.local": true}})
	for i, p := range w.In.Pods {
		if strings.HasPrefix(p.Name, "reviews-v1") {
			p = p.DeepCopy()
			p.Labels["tier"] = "gold"
			w.In.Pods[i] = p
		}
	}
	snap := model.Build(3, w.Input())
	s.Update(snap, model.Change{EndpointHosts: map[string]bool{"reviews.default.svc.cluster.local": true}})
	served, err := s.Resources(c.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	want := generate(t, NewPushContext(snap), c.NodeID)
	for _, typ := range TypeURLs[:4] {
		if served.Version(typ) != want.Version(typ) {
			t.Errorf("reviews-v1 is served %s %s, a full rebuild gives %s", ShortType(typ), served.Version(typ), want.Version(typ))
		}
	}
	if err := c.WaitFor(ctx, policy); err != nil {
		t.Fatalf("reviews-v1, labelled tier: gold, never got gold-only on its inbound listener: %v", err)
	}
}

// A proxy's memoised group key holds only under the config it was derived
// from: after a config change (a new push context) every key is derived
// again. reviews-v1 and reviews-v2 share a key until an
// AuthorizationPolicy selects version v1 only; from then on reviews-v1
// must carry it and reviews-v2 must not, each served what a full rebuild
// gives. With the memo kept across the change, both keep the shared key
// and are served one config, built for whichever came first.
func TestConfigChangeRederivesEveryKey(t *testing.T) {
	w, _ := bookinfo(t)
	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	v1 := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, "reviews-v1")}
	v2 := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, "reviews-v2")}
	for _, c := range []*pilottest.ADSClient{v1, v2} {
		if err := c.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		waitSynced(t, s, c.NodeID, "CDS", "EDS", "LDS")
	}
	before, err := s.Resources(v1.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if before.key == "" || before.key != mustResources(t, s, v2.NodeID).key {
		t.Fatalf("reviews-v1 and reviews-v2 do not share a group key before the policy (%q, %q); the test needs them to", before.key, mustResources(t, s, v2.NodeID).key)
	}
	if err := w.AddYAML([]byte(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: v1-only, namespace: default}
spec:
  selector: {matchLabels: {version: v1}}
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	snap := model.Build(2, w.Input())
	s.Update(snap, model.Change{Full: true})
	policy := func(c *pilottest.ADSClient) bool {
		return strings.Contains(fmt.Sprint(c.Resource(resourcev3.ListenerType, VirtualInbound)), "v1-only")
	}
	if err := v1.WaitFor(ctx, policy); err != nil {
		t.Fatalf("reviews-v1 never got v1-only on its inbound listener: %v", err)
	}
	for _, c := range []*pilottest.ADSClient{v1, v2} {
		served := mustResources(t, s, c.NodeID)
		want := generate(t, NewPushContext(snap), c.NodeID)
		for _, typ := range TypeURLs[:4] {
			if served.Version(typ) != want.Version(typ) {
				t.Errorf("%s is served %s %s, a full rebuild gives %s", c.NodeID, ShortType(typ), served.Version(typ), want.Version(typ))
			}
		}
	}
	if strings.Contains(fmt.Sprint(mustResources(t, s, v2.NodeID).Items(resourcev3.ListenerType)), "v1-only") {
		t.Error("reviews-v2 is served v1-only, which selects version v1")
	}
}

func mustResources(t *testing.T, s *Server, node string) *Resources {
	t.Helper()
	r, err := s.Resources(node)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
