package rollout

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/pilot/pilottest/livepilot"
	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
	"mesh.dev/mesh/internal/syncstatus"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// runAs runs `mesh rollout ARGS` with the kubeconfig given and namespace
// default, as the root command's --kubeconfig and -n would.
func runAs(t *testing.T, kubeconfig string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx := cli.NewContext(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	ns := "default"
	ctx.ConfigFlags.KubeConfig, ctx.ConfigFlags.Namespace = &kubeconfig, &ns
	cmd := NewCommand(ctx)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// mesh rollout promote and abort against a real API server and a real
// pilot: the request is written on the resource under the caller's RBAC,
// pilot carries it out, and the command returns once pilot reports it.
func TestPromoteAndAbortOnTheAPIServer(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := c.RESTConfig()
	livepilot.Prepare(t, ctx, cfg)
	p := livepilot.Start(t, ctx, c.KubeconfigPath(), nil)
	istio := istioclient.NewForConfigOrDie(cfg)
	vsc := istio.NetworkingV1().VirtualServices("default")
	pilotAt, err := syncstatus.New(p.Debug)
	if err != nil {
		t.Fatal(err)
	}

	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default",
		Annotations: map[string]string{rollout.AnnotationStages: "10,50,100", rollout.AnnotationInterval: "1h"}}}
	vs.Spec.Hosts = []string{"reviews"}
	vs.Spec.Gateways = []string{"mesh"}
	if _, err := vsc.Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// condition waits for the VirtualService's rollout condition, as the
	// status writer (this pilot, the leader) writes it.
	condition := func(status, reason, text string) {
		t.Helper()
		var last any
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			v, err := vsc.Get(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range v.Status.Conditions {
				if c.GetType() == "mesh.io/RolloutReleased" {
					last = c
					return c.GetStatus() == status && c.GetReason() == reason && strings.Contains(c.GetMessage(), text), nil
				}
			}
			return false, nil
		}); err != nil {
			t.Fatalf("condition mesh.io/RolloutReleased never %s/%s with %q; last %v", status, reason, text, last)
		}
	}
	// waitFor polls pilot until its rollout of the VirtualService is as want says.
	waitFor := func(what string, want func(rollout.Status) bool) rollout.Status {
		t.Helper()
		var last rollout.Status
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			sts, err := pilotAt.Rollouts(ctx)
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
		})
		if err != nil {
			t.Fatalf("pilot never reported %s; last %+v", what, last)
		}
		return last
	}
	admin := c.KubeconfigPath()
	at := []string{"--pilot-address", p.Debug}
	cmd := func(kubeconfig string, args ...string) (string, string, error) {
		return runAs(t, kubeconfig, append(args, at...)...)
	}
	// A created resource is staged too (from nothing).
	waitFor("the creation rolling out", func(s rollout.Status) bool { return s.Phase == rollout.Progressing && s.Generation == 1 })
	out, _, err := cmd(admin, "promote", "VirtualService/reviews", "--all")
	if err != nil || !strings.Contains(out, "released to every proxy (Promoted)") {
		t.Fatalf("promote --all: %v\n%s", err, out)
	}
	if s := waitFor("Released", func(s rollout.Status) bool { return true }); s.Phase != rollout.Released {
		t.Errorf("after promote --all the command returned but pilot reports %s", s.Phase)
	}
	condition("True", "Released", "generation 1 is released to every proxy")

	// A change: generation 2 rolls out at stage 1 for an hour.
	cur, err := vsc.Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Hosts = []string{"reviews", "reviews.default.svc.cluster.local"}
	if _, err := vsc.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("generation 2 at stage 1", func(s rollout.Status) bool {
		return s.Phase == rollout.Progressing && s.Generation == 2 && s.Stage == 1
	})

	// Without patch permission the request is refused by the API server
	// and nothing moves.
	viewer, err := c.UserKubeconfig("viewer")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = cmd(viewer, "promote", "VirtualService/reviews")
	if err == nil || cli.IsUsage(err) || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("promote without RBAC: %v, want a forbidden error (exit 1)", err)
	}

	out, _, err = cmd(admin, "promote", "VirtualService/reviews")
	if err != nil || !strings.Contains(out, "promote requested for generation 2 (at stage 1 of 3)") || !strings.Contains(out, "stage 2 of 3 (50% of the affected proxies)") {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	got, err := vsc.Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Annotations[rollout.AnnotationPromote]; v != "2/1" || got.Generation != 2 {
		t.Errorf("the resource carries %s=%q at generation %d, want 2/1 at 2 (an annotation is no new change)", rollout.AnnotationPromote, v, got.Generation)
	}
	if s := waitFor("stage 2", func(rollout.Status) bool { return true }); s.Stage != 2 {
		t.Errorf("pilot at stage %d after promote, want 2", s.Stage)
	}
	condition("False", "Progressing", "generation 2 at stage 2 of 3 (50%)")

	out, _, err = cmd(admin, "abort", "VirtualService/reviews")
	if err != nil || !strings.Contains(out, "RolledBack") {
		t.Fatalf("abort: %v\n%s", err, out)
	}
	condition("False", "RolledBack", "aborted by hand")
	hist, err := pilotAt.RolloutHistory(ctx, "VirtualService/default/reviews")
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range hist {
		steps = append(steps, e.Reason)
	}
	if want := "Started Promoted Started StageAdvanced Aborted"; strings.Join(steps, " ") != want {
		t.Errorf("history %v, want %s", steps, want)
	}

	// Every step is a Kubernetes Event on the VirtualService (recorded by
	// the status writer's leader, this pilot), a Warning when it went wrong.
	kube := kubernetes.NewForConfigOrDie(cfg)
	var evs []corev1.Event
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=VirtualService,involvedObject.name=reviews"})
		if err != nil {
			return false, nil
		}
		evs = l.Items
		return len(evs) >= 5, nil
	}); err != nil {
		t.Fatalf("events on the VirtualService: %d, want its 5 steps", len(evs))
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Name < evs[j].Name })
	var reasons []string
	for _, e := range evs {
		reasons = append(reasons, e.Type+"/"+e.Reason)
		if e.InvolvedObject.UID != got.UID || e.InvolvedObject.APIVersion != "networking.istio.io/v1" || e.Source.Component != "mesh-pilot" {
			t.Errorf("event %s is about %+v from %s, want the VirtualService (uid %s) from mesh-pilot", e.Name, e.InvolvedObject, e.Source.Component, got.UID)
		}
	}
	if want := "Normal/Started Normal/Promoted Normal/Started Normal/StageAdvanced Warning/Aborted"; strings.Join(reasons, " ") != want {
		t.Errorf("events %v, want %s", reasons, want)
	}

	// Nothing is rolling out now: both requests fail (exit 1) and say so.
	for _, a := range []string{"promote", "abort"} {
		_, _, err = cmd(admin, a, "VirtualService/reviews")
		if err == nil || cli.IsUsage(err) || !strings.Contains(err.Error(), "is not rolling out") || !strings.Contains(err.Error(), "RolledBack") {
			t.Errorf("%s after the abort: %v, want not rolling out (RolledBack), exit 1", a, err)
		}
	}
	// Bad arguments are usage errors (exit 64), before anything is asked.
	for _, args := range [][]string{
		{"promote", "Nonsense/reviews"},
		{"abort", "VirtualService/a/b/c"},
		{"promote", "VirtualService/reviews", "--timeout", "0s"},
	} {
		if _, _, err := cmd(admin, args...); !cli.IsUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// A pilot that restarts mid-rollout resumes it from the state the leader
// kept in the cluster: same generation, same stage, the soak not begun
// again.
func TestRestartedPilotResumesTheRollout(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := c.RESTConfig()
	livepilot.Prepare(t, ctx, cfg)
	first := livepilot.Start(t, ctx, c.KubeconfigPath(), nil)
	vsc := istioclient.NewForConfigOrDie(cfg).NetworkingV1().VirtualServices("default")
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "details", Namespace: "default",
		Annotations: map[string]string{rollout.AnnotationStages: "10,50,100", rollout.AnnotationInterval: "1h"}}}
	vs.Spec.Hosts = []string{"details"}
	if _, err := vsc.Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	statusOn := func(p *livepilot.Pilot, want func(rollout.Status) bool) rollout.Status {
		t.Helper()
		cl, err := syncstatus.New(p.Debug)
		if err != nil {
			t.Fatal(err)
		}
		var last rollout.Status
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			sts, err := cl.Rollouts(ctx)
			if err != nil {
				return false, nil
			}
			for _, s := range sts {
				if s.ID == "VirtualService/default/details" {
					last = s
					return want(s), nil
				}
			}
			return false, nil
		}); err != nil {
			t.Fatalf("pilot %s never reported the rollout wanted; last %+v", p.Debug, last)
		}
		return last
	}
	statusOn(first, func(s rollout.Status) bool { return s.Phase == rollout.Progressing })
	if _, _, err := runAs(t, c.KubeconfigPath(), "promote", "VirtualService/details", "--all", "--pilot-address", first.Debug); err != nil {
		t.Fatal(err)
	}
	cur, err := vsc.Get(ctx, "details", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Hosts = []string{"details", "details.default.svc.cluster.local"}
	if _, err := vsc.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	statusOn(first, func(s rollout.Status) bool { return s.Generation == 2 && s.Stage == 1 })
	if _, _, err := runAs(t, c.KubeconfigPath(), "promote", "VirtualService/details", "--pilot-address", first.Debug); err != nil {
		t.Fatal(err)
	}
	before := statusOn(first, func(s rollout.Status) bool { return s.Stage == 2 })
	kube := kubernetes.NewForConfigOrDie(cfg)
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cm, err := kube.CoreV1().ConfigMaps(livepilot.Namespace).Get(ctx, "mesh-pilot-rollouts", metav1.GetOptions{})
		return err == nil && strings.Contains(cm.Data["VirtualService_default_details"], `"stage":1`), nil
	}); err != nil {
		t.Fatalf("the leader never kept stage 2 in the cluster: %v", err)
	}
	first.Stop()

	second := livepilot.Start(t, ctx, c.KubeconfigPath(), nil)
	after := statusOn(second, func(s rollout.Status) bool { return true })
	if after.Phase != rollout.Progressing || after.Generation != 2 || after.Stage != 2 || after.NextStep == nil || !after.NextStep.Equal(*before.NextStep) {
		t.Errorf("after the restart: %+v, want generation 2 Progressing at stage 2 with the next step still at %v", after, before.NextStep)
	}
	cl, _ := syncstatus.New(second.Debug)
	hist, err := cl.RolloutHistory(ctx, "VirtualService/default/details")
	if err != nil || len(hist) == 0 || hist[0].Reason != "Resumed" {
		t.Errorf("the restarted pilot's history %+v (%v), want it to begin Resumed", hist, err)
	}
}
