package rollout_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/pilot/xds"
)

const fixtures = "../../../../shared/fixtures/bookinfo"

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
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`

// reviewsVS is the VirtualService sending reviews traffic to subset, with
// the rollout annotations given.
func reviewsVS(subset, annotations string) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
  annotations: {%s}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: %s}}]
`, annotations, subset)
}

// fleet is pilot's xDS server behind a rollout manager, with real ADS
// clients for every bookinfo pod and the shop's cart.
type fleet struct {
	t       *testing.T
	w       *pilottest.World
	srv     *xds.Server
	mgr     *rollout.Manager
	clock   *rollout.FakeClock
	version uint64
	clients map[string]*pilottest.ADSClient // by pod name
	reject  atomic.Value                    // string: NACK route configs containing it
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	w := pilottest.NewWorld("default")
	if err := w.AddFile(filepath.Join(fixtures, "bookinfo.yaml")); err != nil {
		t.Fatal(err)
	}
	w.AddNamespace("mesh-system", nil)
	if err := w.AddYAML([]byte(shopYAML)); err != nil {
		t.Fatal(err)
	}
	if err := w.AddYAML([]byte(reviewsVS("v1", `rollout.mesh.io/stages: "50,100", rollout.mesh.io/interval: 60s`))); err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, w: w, clock: rollout.NewFakeClock(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)), clients: map[string]*pilottest.ADSClient{}}
	f.reject.Store("")
	f.srv = xds.NewServer(context.Background(), nil, nil, nil)
	f.mgr = &rollout.Manager{Clock: f.clock, Push: f.srv.UpdateStaged}
	f.srv.OnReject = f.mgr.Reject
	f.offer()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	f.srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := f.ctx()
	for _, p := range w.In.Pods {
		c := &pilottest.ADSClient{
			NodeID: model.NodeID(model.SidecarProxy, p.Status.PodIP, p.Name, p.Namespace),
			Reject: func(typeURL string, res []*anypb.Any) error {
				bad := f.reject.Load().(string)
				if typeURL != resourcev3.RouteType || bad == "" {
					return nil
				}
				for _, a := range res {
					if strings.Contains(a.String(), bad) {
						return fmt.Errorf("route names %s, which this proxy refuses", bad)
					}
				}
				return nil
			},
		}
		if err := c.Start(ctx, conn); err != nil {
			t.Fatal(err)
		}
		f.clients[p.Name] = c
	}
	for name, c := range f.clients {
		if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool { return c.Version(resourcev3.RouteType) != "" }); err != nil {
			t.Fatalf("%s never got its routes: %v", name, err)
		}
	}
	return f
}

func (f *fleet) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

func (f *fleet) offer() {
	f.version++
	f.mgr.Offer(model.Build(f.version, f.w.Input()), model.Change{Full: true})
}

func (f *fleet) apply(yaml string) {
	f.t.Helper()
	if err := f.w.AddYAML([]byte(yaml)); err != nil {
		f.t.Fatal(err)
	}
	f.offer()
}

// subset is the reviews subset a proxy's 9080 route table (as the proxy
// holds it) sends traffic to, "" when the table names none.
func subset(c *pilottest.ADSClient) string {
	a := c.Resource(resourcev3.RouteType, "9080")
	if a == nil {
		return ""
	}
	var rc routev3.RouteConfiguration
	if err := a.UnmarshalTo(&rc); err != nil {
		return ""
	}
	for _, vh := range rc.VirtualHosts {
		if !strings.HasPrefix(vh.Name, "reviews.") {
			continue
		}
		for _, r := range vh.Routes {
			cl := r.GetRoute().GetCluster()
			if parts := strings.Split(cl, "|"); len(parts) == 4 {
				return parts[2]
			}
		}
	}
	return ""
}

// waitSubsets waits until every client holds the subset want gives it
// (pods absent from want: the reviews route they started with) and
// returns the pods on each subset.
func (f *fleet) waitSubsets(step string, want map[string]string) {
	f.t.Helper()
	ctx := f.ctx()
	for name, c := range f.clients {
		sub, ok := want[name]
		if !ok {
			continue
		}
		if err := c.WaitFor(ctx, func(c *pilottest.ADSClient) bool { return subset(c) == sub }); err != nil {
			f.t.Fatalf("%s: %s holds reviews route to subset %q, want %q: %v", step, name, subset(c), sub, err)
		}
	}
}

func (f *fleet) status(id string) rollout.Status {
	for _, s := range f.mgr.Statuses() {
		if s.ID == id {
			return s
		}
	}
	f.t.Fatalf("no rollout status for %s", id)
	return rollout.Status{}
}

func podOf(nodeID string) string {
	p, err := model.ParseNodeID(nodeID)
	if err != nil {
		return nodeID
	}
	return p.PodName
}

const vsID = "VirtualService/default/reviews"

// A VirtualService change with stages "50,100" reaches exactly half of the
// connected proxies it affects (the six bookinfo sidecars, not shop's
// cart, whose Sidecar hides reviews), the others keep the released route;
// after the interval everyone has it and the change is released.
func TestStagedChangeReachesItsShareThenAll(t *testing.T) {
	f := newFleet(t)
	bookinfo := []string{}
	for name := range f.clients {
		if !strings.HasPrefix(name, "cart") {
			bookinfo = append(bookinfo, name)
		}
	}
	sort.Strings(bookinfo)
	all := func(sub string) map[string]string {
		m := map[string]string{}
		for _, n := range bookinfo {
			m[n] = sub
		}
		return m
	}
	f.waitSubsets("start", all("v1"))
	cartRoutes := f.clients["cart-0"].Version(resourcev3.RouteType)

	f.apply(reviewsVS("v2", `rollout.mesh.io/stages: "50,100", rollout.mesh.io/interval: 60s`))
	st := f.status(vsID)
	if st.Phase != rollout.Progressing || st.Stage != 1 || st.Affected != 6 || len(st.Staged) != 3 {
		t.Fatalf("after the change: %+v, want stage 1 Progressing with 3 of 6 affected proxies staged", st)
	}
	want := all("v1")
	for _, id := range st.Staged {
		want[podOf(id)] = "v2"
	}
	f.waitSubsets("stage 1", want)
	onV2 := 0
	for _, n := range bookinfo {
		if subset(f.clients[n]) == "v2" {
			onV2++
		}
	}
	if onV2 != 3 {
		t.Errorf("stage 1: %d of 6 proxies route to v2, want 3", onV2)
	}
	staged := map[string]bool{}
	for _, row := range f.srv.Syncz() {
		if len(row.Candidates) > 0 {
			staged[podOf(row.Proxy)] = true
		}
	}
	if len(staged) != 3 {
		t.Errorf("syncz shows %d proxies on the candidate, want 3: %v", len(staged), staged)
	}

	// Promotion comes from the clock, not from the test's own timing.
	f.clock.Advance(59 * time.Second)
	if st := f.status(vsID); st.Phase != rollout.Progressing || st.Stage != 1 {
		t.Fatalf("before the interval: %+v, want still stage 1", st)
	}
	f.clock.Advance(time.Second)
	f.waitSubsets("after the interval", all("v2"))
	if st := f.status(vsID); st.Phase != rollout.Released {
		t.Errorf("after the last stage: %s, want Released", st.Phase)
	}
	if got := f.clients["cart-0"].Version(resourcev3.RouteType); got != cartRoutes {
		t.Errorf("cart (which does not see reviews) was sent new routes")
	}
	h, err := f.mgr.History(vsID)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range h {
		steps = append(steps, e.Reason)
	}
	if got := strings.Join(steps, ","); got != "Started,Promoted" {
		t.Errorf("history %s, want Started,Promoted", got)
	}
	for _, row := range f.srv.Syncz() {
		if len(row.Candidates) > 0 {
			t.Errorf("%s still served a candidate after release: %v", row.Proxy, row.Candidates)
		}
	}

	// Without the annotation a change goes out at once, as before.
	f.apply(reviewsVS("v3", ""))
	f.waitSubsets("unstaged change", all("v3"))
}

// A candidate a staged proxy NACKs is rolled back for every proxy: the
// staged ones return to the released version and the rest never see it.
func TestRejectedCandidateRollsBackEverywhere(t *testing.T) {
	f := newFleet(t)
	released := map[string]string{}
	for n := range f.clients {
		if !strings.HasPrefix(n, "cart") {
			released[n] = "v1"
		}
	}
	f.waitSubsets("start", released)
	f.reject.Store("|v3|reviews")

	f.apply(reviewsVS("v3", `rollout.mesh.io/stages: "10,50,100", rollout.mesh.io/interval: 60s`))
	ctx := f.ctx()
	for {
		st := f.status(vsID)
		if st.Phase == rollout.RolledBack {
			if !strings.Contains(st.Reason, "rejected the candidate's RDS") {
				t.Errorf("rollback reason %q does not say what was rejected", st.Reason)
			}
			break
		}
		if st.Phase != rollout.Progressing {
			t.Fatalf("candidate ended %s, want RolledBack", st.Phase)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the NACKed candidate was never rolled back: %+v", st)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Every proxy is served (and holds) the released route again.
	for _, row := range f.srv.Syncz() {
		if len(row.Candidates) > 0 {
			t.Errorf("%s still served the candidate: %v", row.Proxy, row.Candidates)
		}
	}
	for n, c := range f.clients {
		res, err := f.srv.Resources(c.NodeID)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range res.Names(resourcev3.RouteType) {
			for _, r := range res.Items(resourcev3.RouteType) {
				if strings.Contains(fmt.Sprint(r), "|v3|reviews") {
					t.Errorf("%s is still served route %s to v3", n, name)
				}
			}
		}
	}
	f.waitSubsets("rolled back", released)
	// The clock moving on promotes nothing.
	f.clock.Advance(10 * time.Minute)
	if st := f.status(vsID); st.Phase != rollout.RolledBack {
		t.Errorf("after the interval: %s, want still RolledBack", st.Phase)
	}
	for n, c := range f.clients {
		if subset(c) == "v3" {
			t.Errorf("%s holds the rejected route", n)
		}
	}
}
