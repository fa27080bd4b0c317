package rolloutha_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/pilottest/livepilot"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
	"mesh.dev/mesh/internal/syncstatus"
)

// A pilot that died holding the lease (a crash, not a stop) leaves it to
// run out; its successor serves meanwhile, and the steps it takes then,
// while no replica records Events (resuming the rollout, a new change
// superseding it), are recorded once it takes the lease: every step has
// its Event, and none twice.
func TestStepsTakenBeforeTheLeaseAreRecorded(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := c.RESTConfig()
	livepilot.Prepare(t, ctx, cfg)
	kube := kubernetes.NewForConfigOrDie(cfg)
	// A namespace of its own: the package's other tests leave theirs in default.
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restart"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vsc := istioclient.NewForConfigOrDie(cfg).NetworkingV1().VirtualServices("restart")
	route := func(vs *networkingv1.VirtualService, subset string) {
		vs.Spec.Hosts = []string{"reviews"}
		vs.Spec.Http = []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{{Destination: &networkingapi.Destination{Host: "reviews", Subset: subset}}}}}
	}
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "restart",
		Annotations: map[string]string{rollout.AnnotationStages: "50,100", rollout.AnnotationInterval: "1h"}}}
	route(vs, "v1")
	if _, err := vsc.Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	edit := func(subset string) int64 {
		t.Helper()
		var gen int64
		// pilot writes the resource's status meanwhile: a Conflict is retried.
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := vsc.Get(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				return err
			}
			route(cur, subset)
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
	leases := kube.CoordinationV1().Leases(livepilot.Namespace)
	holder := func() string {
		l, err := leases.Get(ctx, "mesh-pilot-status", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
			t.Fatalf("%s: never", what)
		}
	}
	events := func() []string {
		l, err := kube.CoreV1().Events("restart").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=VirtualService,involvedObject.name=reviews"})
		if err != nil {
			return nil
		}
		sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
		var out []string
		for _, e := range l.Items {
			out = append(out, e.Reason)
		}
		return out
	}
	// setLease writes the lease as the dead pilot left it, valid for d
	// from now as the successor sees it.
	setLease := func(d time.Duration) {
		t.Helper()
		l, err := leases.Get(ctx, "mesh-pilot-status", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = ptr.To("pilot-a"), ptr.To(int32(d.Seconds())), &now
		if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	a := livepilot.Start(t, ctx, c.KubeconfigPath(), func(o *pilot.Options) { o.Identity = "pilot-a" })
	poll("pilot-a leading", func() bool { return holder() == "pilot-a" })
	edit("v2")
	poll("the change's Started Event", func() bool { return strings.Join(events(), " ") == "Started" })
	poll("the rollout kept in the cluster", func() bool {
		cm, err := kube.CoreV1().ConfigMaps(livepilot.Namespace).Get(ctx, "mesh-pilot-rollouts", metav1.GetOptions{})
		return err == nil && strings.Contains(cm.Data["VirtualService_restart_reviews"], `"phase":"Progressing"`)
	})
	a.Stop()
	setLease(time.Hour) // pilot-a died holding it

	b := livepilot.Start(t, ctx, c.KubeconfigPath(), func(o *pilot.Options) { o.Identity = "pilot-b" })
	gen := edit("v3")
	var steps []string
	poll("pilot-b resuming, then superseded by the new change", func() bool {
		h, err := history(ctx, b)
		if err != nil {
			return false
		}
		steps = steps[:0]
		for _, ev := range h {
			steps = append(steps, ev.Reason)
		}
		return strings.Join(steps, " ") == "Resumed Superseded Started"
	})
	if h := holder(); h != "pilot-a" {
		t.Fatalf("the lease is %q's before it ran out: the steps were not taken while nobody led", h)
	}
	if got := events(); strings.Join(got, " ") != "Started" {
		t.Fatalf("Events %v while nobody leads, want only pilot-a's Started", got)
	}
	setLease(time.Second) // it runs out
	poll("pilot-b leading", func() bool { return holder() == "pilot-b" })
	want := "Started Resumed Superseded Started"
	var got []string
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		got = events()
		return strings.Join(got, " ") == want, nil
	}); err != nil {
		t.Fatalf("Events %v, want %s (pilot-b's steps of generation %d's rollout taken before it led)", got, want, gen)
	}
}

func history(ctx context.Context, p *livepilot.Pilot) ([]rollout.Event, error) {
	cl, err := syncstatus.New(p.Debug)
	if err != nil {
		return nil, err
	}
	return cl.RolloutHistory(ctx, "VirtualService/restart/reviews")
}
