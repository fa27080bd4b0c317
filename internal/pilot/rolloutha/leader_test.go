package rolloutha_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	networkingapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/pilottest/livepilot"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
	"mesh.dev/mesh/internal/syncstatus"
)

// reviewsSubset is the reviews subset a proxy's 9080 route table sends
// traffic to, "" when it names none.
func reviewsSubset(c *pilottest.ADSClient) string {
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
			if parts := strings.Split(r.GetRoute().GetCluster(), "|"); len(parts) == 4 {
				return parts[2]
			}
		}
	}
	return ""
}

// Two pilot replicas, one rollout: the status writer's leader steps it,
// the other serves the stage the leader keeps in the cluster (it does not
// step on its own: it ignores the promote request the leader carries
// out); the leader stopped, the other takes over, resumes at the same
// stage with the same soak and steps on; a proxy of a replica that does
// not lead rejecting the candidate rolls it back through the leader.
// Every step is one Event.
func TestRolloutReplicasAgreeOnTheStage(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := c.RESTConfig()
	livepilot.Prepare(t, ctx, cfg)
	kube := kubernetes.NewForConfigOrDie(cfg)
	vsc := istioclient.NewForConfigOrDie(cfg).NetworkingV1().VirtualServices("default")
	if _, err := kube.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dr := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"}}
	dr.Spec.Host = "reviews"
	for _, v := range []string{"v1", "v2", "v3"} {
		dr.Spec.Subsets = append(dr.Spec.Subsets, &networkingapi.Subset{Name: v, Labels: map[string]string{"version": v}})
	}
	if _, err := istioclient.NewForConfigOrDie(cfg).NetworkingV1().DestinationRules("default").Create(ctx, dr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	route := func(vs *networkingv1.VirtualService, subset string) {
		vs.Spec.Hosts = []string{"reviews"}
		vs.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "reviews", Subset: subset}}}}}
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default",
		Annotations: map[string]string{rollout.AnnotationStages: "30,60,100", rollout.AnnotationInterval: "1h"}}}
	route(vs, "v1")
	if _, err := vsc.Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	holder := func() string {
		l, err := kube.CoordinationV1().Leases(livepilot.Namespace).Get(ctx, "mesh-pilot-status", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	waitLeader := func(id string) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			return holder() == id, nil
		}); err != nil {
			t.Fatalf("%s never took the lease (holder %q)", id, holder())
		}
	}
	start := func(id string) *livepilot.Pilot {
		return livepilot.Start(t, ctx, c.KubeconfigPath(), func(o *pilot.Options) { o.Identity = id })
	}
	a := start("pilot-a")
	waitLeader("pilot-a")
	b := start("pilot-b")

	// proxies connects n sidecars of namespace default to p's plaintext
	// xDS; reject, when set, NACKs route tables naming that subset.
	proxies := func(p *livepilot.Pilot, prefix string, n int, reject string) []*pilottest.ADSClient {
		t.Helper()
		addr, err := p.Addr(ctx, "xds")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		var out []*pilottest.ADSClient
		for i := range n {
			cl := &pilottest.ADSClient{NodeID: model.NodeID(model.SidecarProxy, fmt.Sprintf("198.18.7.%d", 10+len(prefix)*10+i), fmt.Sprintf("%s-%d", prefix, i), "default")}
			if reject != "" {
				cl.Reject = func(typeURL string, res []*anypb.Any) error {
					for _, r := range res {
						if typeURL == resourcev3.RouteType && strings.Contains(r.String(), "|"+reject+"|") {
							return fmt.Errorf("route to subset %s refused", reject)
						}
					}
					return nil
				}
			}
			if err := cl.Start(ctx, conn); err != nil {
				t.Fatal(err)
			}
			out = append(out, cl)
		}
		return out
	}
	// onSubsets waits until the clients hold, sorted, the subsets want.
	onSubsets := func(step string, cls []*pilottest.ADSClient, want string) {
		t.Helper()
		var got string
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
			var subs []string
			for _, cl := range cls {
				subs = append(subs, reviewsSubset(cl))
			}
			sort.Strings(subs)
			got = strings.Join(subs, ",")
			return got == want, nil
		}); err != nil {
			t.Fatalf("%s: the proxies route reviews to %s, want %s", step, got, want)
		}
	}
	statusOn := func(p *livepilot.Pilot, what string, want func(rollout.Status) bool) rollout.Status {
		t.Helper()
		cl, err := syncstatus.New(p.Debug)
		if err != nil {
			t.Fatal(err)
		}
		var last rollout.Status
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			sts, err := cl.Rollouts(ctx)
			if err != nil {
				return false, nil
			}
			for _, s := range sts {
				if s.ID == "VirtualService/default/reviews" {
					last = s
					return want(s), nil
				}
			}
			return false, nil
		}); err != nil {
			t.Fatalf("pilot %s never reported %s; last %+v", p.Identity, what, last)
		}
		return last
	}
	history := func(p *livepilot.Pilot) []rollout.Event {
		t.Helper()
		cl, _ := syncstatus.New(p.Debug)
		h, err := cl.RolloutHistory(ctx, "VirtualService/default/reviews")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	edit := func(f func(*networkingv1.VirtualService)) int64 {
		t.Helper()
		var gen int64
		// pilot writes the resource's status meanwhile: a Conflict is retried.
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := vsc.Get(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				return err
			}
			f(cur)
			up, err := vsc.Update(ctx, cur, metav1.UpdateOptions{})
			if err == nil {
				gen = up.Generation
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return gen
	}

	onB := proxies(b, "b", 3, "")
	onSubsets("before the change", onB, "v1,v1,v1")

	gen := edit(func(v *networkingv1.VirtualService) { route(v, "v2") })
	atA := statusOn(a, "stage 1 on the leader", func(s rollout.Status) bool { return s.Generation == gen && s.Stage == 1 })
	// The follower serves stage 1 from the instant the leader began it.
	statusOn(b, "stage 1 on the follower, soaked as on the leader", func(s rollout.Status) bool {
		return s.Generation == gen && s.Stage == 1 && s.NextStep != nil && s.NextStep.Equal(*atA.NextStep)
	})
	onSubsets("stage 1 (30% of the follower's 3 proxies)", onB, "v1,v1,v2")

	// A promote request: the leader carries it out; the follower, which
	// does not step on its own, serves stage 2 because the leader kept it.
	edit(func(v *networkingv1.VirtualService) {
		v.Annotations[rollout.AnnotationPromote] = fmt.Sprintf("%d/1", gen)
	})
	atA = statusOn(a, "stage 2 on the leader", func(s rollout.Status) bool { return s.Stage == 2 })
	atB := statusOn(b, "stage 2 on the follower", func(s rollout.Status) bool {
		return s.Stage == 2 && s.NextStep != nil && s.NextStep.Equal(*atA.NextStep)
	})
	onSubsets("stage 2 (60%)", onB, "v1,v2,v2")
	h := history(b)
	if last := h[len(h)-1]; last.Reason != "StageAdvanced" || !strings.Contains(last.Message, "stepped by the leader") {
		t.Errorf("the follower's last step %+v, want StageAdvanced stepped by the leader", last)
	}

	// The leader goes; the other takes the lease and the rollout over, at
	// the same stage, the soak not begun again.
	a.Stop()
	waitLeader("pilot-b")
	after := statusOn(b, "the rollout after the takeover", func(rollout.Status) bool { return true })
	if after.Phase != rollout.Progressing || after.Stage != 2 || after.NextStep == nil || !after.NextStep.Equal(*atB.NextStep) {
		t.Errorf("after the takeover: %+v, want stage 2 with the next step still at %v", after, atB.NextStep)
	}
	onSubsets("after the takeover", onB, "v1,v2,v2")
	// The new leader steps: the next request releases the change.
	edit(func(v *networkingv1.VirtualService) {
		v.Annotations[rollout.AnnotationPromote] = fmt.Sprintf("%d/2", gen)
	})
	statusOn(b, "Released by the new leader", func(s rollout.Status) bool { return s.Phase == rollout.Released })
	onSubsets("released", onB, "v2,v2,v2")
	// The state is written to its ConfigMap after the step, not with it.
	var kept map[string]string
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		cm, err := kube.CoreV1().ConfigMaps(livepilot.Namespace).Get(ctx, "mesh-pilot-rollouts", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		kept = cm.Data
		return strings.Contains(cm.Data["VirtualService_default_reviews"], `"phase":"Released"`), nil
	}); err != nil {
		t.Errorf("the new leader did not keep the release in the cluster: %v", kept)
	}

	// A third replica, which does not lead, has a proxy that refuses
	// routes to v3: its rejection goes to the leader, which rolls the
	// candidate back for every replica.
	cRep := start("pilot-c")
	onC := proxies(cRep, "c", 1, "v3")
	onSubsets("the third replica's proxy", onC, "v2")
	gen = edit(func(v *networkingv1.VirtualService) {
		route(v, "v3")
		v.Annotations[rollout.AnnotationStages] = "50,100"
	})
	rb := statusOn(b, "the leader rolling back the rejected candidate", func(s rollout.Status) bool {
		return s.Generation == gen && s.Phase == rollout.RolledBack
	})
	if !strings.Contains(rb.Reason, "served by another pilot replica") || !strings.Contains(rb.Reason, "route to subset v3 refused") {
		t.Errorf("rolled back for %q, want the other replica's proxy's NACK", rb.Reason)
	}
	statusOn(cRep, "the follower rolled back", func(s rollout.Status) bool { return s.Generation == gen && s.Phase == rollout.RolledBack })
	onSubsets("rolled back, the follower's proxies", onB, "v2,v2,v2")
	onSubsets("rolled back, the rejecting proxy", onC, "v2")

	// One Event per step, whichever replica took it: no step twice.
	want := "Normal/Started Normal/StageAdvanced Normal/Promoted Normal/Started Warning/RolledBack"
	var got []string
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=VirtualService,involvedObject.name=reviews"})
		if err != nil {
			return false, nil
		}
		sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
		got = got[:0]
		for _, e := range l.Items {
			got = append(got, e.Type+"/"+e.Reason)
		}
		return strings.Join(got, " ") == want, nil
	}); err != nil {
		t.Errorf("events %v, want %s", got, want)
	}
}
