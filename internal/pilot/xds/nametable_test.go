package xds

import (
	"context"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/nds"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
)

// Services and ServiceEntries seen differently from default and from shop
// (whose Sidecar admits only its own namespace), one of them exported
// only to its own namespace, and ServiceEntries with and without
// addresses.
const nameTableYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 198.19.0.10
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec:
  clusterIP: None
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: private, namespace: other, annotations: {networking.istio.io/exportTo: "."}}
spec:
  clusterIP: 198.19.0.12
  selector: {app: private}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  clusterIP: 198.19.0.20
  selector: {app: cart}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.internal]
  addresses: [198.51.100.7]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.5}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: noaddr, namespace: default}
spec:
  hosts: [noaddr.internal]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough, namespace: default}
spec:
  hosts: [pass.internal]
  ports: [{number: 9001, name: tcp, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.wild.internal"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews}}
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
metadata: {name: curl, namespace: default}
spec:
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec: {containers: [{name: curl, image: curl}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shopper, namespace: shop}
spec:
  selector: {matchLabels: {app: shopper}}
  template:
    metadata: {labels: {app: shopper}}
    spec: {containers: [{name: shopper, image: shopper}]}
`

func dnsMeta(kv ...string) *structpb.Struct {
	m := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Fields[kv[i]] = structpb.NewStringValue(kv[i+1])
	}
	return m
}

func nameTableOf(t *testing.T, c *pilottest.ADSClient) nds.Table {
	t.Helper()
	a := c.Resource(nds.TypeURL, NameTableName)
	if a == nil {
		return nil
	}
	tab, err := nds.FromAny(a)
	if err != nil {
		t.Fatalf("%s: %v", c.NodeID, err)
	}
	return tab
}

func hostsOf(tab nds.Table) []string {
	var out []string
	for h := range tab {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// listenedAddresses are the destination prefixes the proxy's outbound
// listeners match on port's filter chains.
func listenedAddresses(t *testing.T, c *pilottest.ADSClient, port uint32) []string {
	t.Helper()
	var out []string
	for _, n := range []string{"0.0.0.0_" + strconv.Itoa(int(port))} {
		a := c.Resource(resourcev3.ListenerType, n)
		if a == nil {
			continue
		}
		var l listenerv3.Listener
		if err := a.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		for _, fc := range l.FilterChains {
			for _, pr := range fc.GetFilterChainMatch().GetPrefixRanges() {
				out = append(out, pr.AddressPrefix)
			}
		}
	}
	return out
}

// A proxy that captures DNS is sent, over its ADS stream, the name table
// of what its scope sees: Services by ClusterIP with their name and
// namespace, ServiceEntry hosts by address; with auto-allocation, the
// ServiceEntry hosts without addresses get one of 240.240.0.0/16 in the
// table and in its listeners; a new ServiceEntry is pushed to it.
func TestNameTableOverADS(t *testing.T) {
	w := pilottest.NewWorld("default")
	if err := w.AddYAML([]byte(nameTableYAML)); err != nil {
		t.Fatal(err)
	}
	s := NewServer(context.Background(), nil, NewMetrics(prometheus.NewRegistry()), nil)
	s.Update(model.Build(1, w.Input()), model.Change{Full: true})
	conn := startADS(t, s)
	ctx := waitCtx(t)
	start := func(pod, ns string, meta *structpb.Struct) *pilottest.ADSClient {
		c := &pilottest.ADSClient{NodeID: w.PodProxy(model.SidecarProxy, pod), Metadata: meta, Types: []string{nds.TypeURL}}
		if c.NodeID == "" {
			t.Fatalf("no pod %s", pod)
		}
		if err := c.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		waitSynced(t, s, c.NodeID, "CDS", "LDS")
		if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool { return meta == nil || c.Resource(nds.TypeURL, NameTableName) != nil }); err != nil {
			t.Fatalf("%s: no name table: %v", pod, err)
		}
		return c
	}
	auto := start("sleep", "default", dnsMeta("DNS_CAPTURE", "true", "DNS_AUTO_ALLOCATE", "true"))
	plain := start("reviews", "default", dnsMeta("DNS_CAPTURE", "true"))
	shop := start("shopper", "shop", dnsMeta("DNS_CAPTURE", "true"))
	off := start("curl", "default", nil)

	reviews := nds.Info{IPs: []string{"198.19.0.10"}, Registry: nds.RegistryKubernetes, Shortname: "reviews", Namespace: "default"}
	cart := nds.Info{IPs: []string{"198.19.0.20"}, Registry: nds.RegistryKubernetes, Shortname: "cart", Namespace: "shop"}
	db := nds.Info{IPs: []string{"198.51.100.7"}, Registry: nds.RegistryExternal}
	want := nds.Table{"reviews.default.svc.cluster.local": reviews, "cart.shop.svc.cluster.local": cart, "db.internal": db}
	if got := nameTableOf(t, plain); !reflect.DeepEqual(got, want) {
		t.Errorf("default, no auto-allocation: hosts %v\n got %+v\nwant %+v", hostsOf(got), got, want)
	}
	if got := nameTableOf(t, shop); !reflect.DeepEqual(got, nds.Table{"cart.shop.svc.cluster.local": cart}) {
		t.Errorf("shop (Sidecar egress ./*): %+v, want only cart", got)
	}
	tab := nameTableOf(t, auto)
	allocated := tab["noaddr.internal"]
	if len(allocated.IPs) != 1 {
		t.Fatalf("auto-allocation: noaddr.internal %+v (table %v)", allocated, hostsOf(tab))
	}
	addr := netip.MustParseAddr(allocated.IPs[0])
	if !model.AutoAllocatePrefix.Contains(addr) {
		t.Errorf("noaddr.internal allocated %s, outside %s", addr, model.AutoAllocatePrefix)
	}
	for _, h := range []string{"pass.internal", "*.wild.internal", "headless.default.svc.cluster.local", "private.other.svc.cluster.local"} {
		if _, ok := tab[h]; ok {
			t.Errorf("auto-allocating proxy's table has %s", h)
		}
	}
	// The allocated address routes: the proxy's TCP listener on 9000
	// matches it; a proxy without auto-allocation has no such chain.
	if got := listenedAddresses(t, auto, 9000); !reflect.DeepEqual(got, []string{addr.String()}) {
		t.Errorf("auto-allocating proxy's 9000 chains match %v, want [%s]", got, addr)
	}
	if got := listenedAddresses(t, plain, 9000); len(got) != 0 {
		t.Errorf("plain proxy's 9000 chains match %v, want none (the host has no address)", got)
	}
	if res, err := s.Resources(off.NodeID); err != nil || len(res.Items(nds.TypeURL)) != 0 {
		t.Errorf("a proxy without DNS capture is given a name table (%v)", err)
	}

	// A new ServiceEntry reaches the tables of the proxies that see it,
	// and the address allocated before stays.
	before := auto.Version(nds.TypeURL)
	shopBefore := shop.Version(nds.TypeURL)
	if err := w.AddYAML([]byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: fresh, namespace: default}
spec:
  hosts: [fresh.internal, fresh2.internal]
  ports: [{number: 9002, name: tcp, protocol: TCP}]
  resolution: DNS
`)); err != nil {
		t.Fatal(err)
	}
	s.Update(model.Build(2, w.Input()), model.Change{Full: true})
	if err := auto.WaitFor(ctx, func(c *pilottest.ADSClient) bool { return c.Version(nds.TypeURL) != before }); err != nil {
		t.Fatalf("no new name table after a ServiceEntry was added: %v", err)
	}
	tab = nameTableOf(t, auto)
	if got := tab["noaddr.internal"].IPs; !reflect.DeepEqual(got, allocated.IPs) {
		t.Errorf("noaddr.internal moved from %v to %v", allocated.IPs, got)
	}
	a, b := tab["fresh.internal"].IPs, tab["fresh2.internal"].IPs
	if len(a) != 1 || len(b) != 1 || a[0] == b[0] || a[0] == allocated.IPs[0] {
		t.Errorf("fresh hosts allocated %v and %v (noaddr %v): want distinct addresses", a, b, allocated.IPs)
	}
	if got := listenedAddresses(t, auto, 9002); len(got) != 2 {
		t.Errorf("9002 chains match %v, want the two fresh addresses", got)
	}
	waitSynced(t, s, shop.NodeID, "CDS", "LDS")
	if shop.Version(nds.TypeURL) != shopBefore {
		t.Errorf("shop's table changed though its Sidecar does not admit the new host")
	}
}
