package install_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
	"mesh.dev/mesh/internal/spec"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// rendering renders the mesh for --set flags the way the commands do.
func rendering(t *testing.T, rev string, sets ...string) (install.Manifest, install.State) {
	t.Helper()
	op, _, err := spec.Load(spec.LoadOptions{Sets: sets, Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	m, err := render.Render(op)
	if err != nil {
		t.Fatal(err)
	}
	var comps []install.Component
	for _, c := range m.Components {
		comps = append(comps, install.Component{Name: c.Name, Objects: c.Objects})
	}
	tree, err := op.Tree()
	if err != nil {
		t.Fatal(err)
	}
	specTree, _ := tree["spec"].(map[string]any)
	return install.Prepare(op.RevisionLabel(), comps), install.State{Version: "1.0.0", Spec: specTree}
}

func client(t *testing.T) *kube.Client {
	t.Helper()
	c, err := kube.NewClient(sandboxtest.Cluster(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func installer(c *kube.Client) *install.Installer {
	return &install.Installer{Client: c, Wait: true, ReadinessTimeout: 2 * time.Minute}
}

// meshObjects lists every object in the cluster, of every listable kind, that carries the selector's labels.
func meshObjects(t *testing.T, c *kube.Client, selector string) []kube.Ref {
	t.Helper()
	lists, err := c.Kube.Discovery().ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	var gvks []schema.GroupVersionKind
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if slices.Contains(r.Verbs, "list") && !strings.Contains(r.Name, "/") {
				gvks = append(gvks, gv.WithKind(r.Kind))
			}
		}
	}
	c.ResetMapping()
	objs, err := c.List(context.Background(), gvks, selector)
	if err != nil {
		t.Fatal(err)
	}
	var out []kube.Ref
	for _, o := range objs {
		out = append(out, kube.RefOf(o))
	}
	return out
}

func deployments(t *testing.T, c *kube.Client, rev string) map[string]bool {
	t.Helper()
	l, err := c.Kube.AppsV1().Deployments("").List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelPartOf + "=mesh," + kube.LabelRevision + "=" + rev})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range l.Items {
		avail := false
		for _, cond := range d.Status.Conditions {
			avail = avail || cond.Type == "Available" && cond.Status == corev1.ConditionTrue
		}
		out[d.Name] = avail
	}
	return out
}

var virtualServices = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// TestLifecycle walks one cluster through install, re-install, drift, upgrade,
// a second revision, interruption, uninstall and purge. The steps share the
// sandbox and depend on each other, so they run in order.
func TestLifecycle(t *testing.T) {
	c := client(t)

	demo, demoState := rendering(t, "", "profile=demo")
	t.Run("install demo", func(t *testing.T) {
		res, err := installer(c).Run(ctxFor(t), demo, demoState)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changed() || res.Count() != len(demo.Objects()) {
			t.Errorf("first install: changed=%v, %d objects applied of %d", res.Changed(), res.Count(), len(demo.Objects()))
		}
		deps := deployments(t, c, "default")
		if len(deps) < 3 {
			t.Errorf("demo should run pilot and two gateways, found deployments %v", deps)
		}
		for name, ok := range deps {
			if !ok {
				t.Errorf("deployment %s is not Available after the install returned", name)
			}
		}
		rec, err := install.FindRecord(ctxFor(t), c, "")
		if err != nil || rec == nil || rec.Spec["profile"] != "demo" {
			t.Errorf("installed-state record: %+v, %v", rec, err)
		}
	})

	t.Run("verify-install is clean", func(t *testing.T) {
		res, err := (&install.Verifier{Client: c}).Run(ctxFor(t), demo)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Clean() {
			t.Fatalf("verify after install: %+v", res)
		}
	})

	t.Run("re-install changes nothing", func(t *testing.T) {
		res, err := installer(c).Run(ctxFor(t), demo, demoState)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed() {
			for _, comp := range res.Components {
				for _, o := range comp.Objects {
					if o.Action != kube.Unchanged {
						t.Errorf("re-install %s %s", o.Action, o.Ref)
					}
				}
			}
			t.Errorf("pruned %v, record %s", res.Pruned, res.Recorded)
		}
	})

	t.Run("verify-install names drift and install repairs it", func(t *testing.T) {
		patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"discovery","image":"example.invalid/other:1"}]}}}}`)
		_, err := c.Kube.AppsV1().Deployments("mesh-system").Patch(ctxFor(t), "mesh-pilot", types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Kube.CoreV1().ConfigMaps("mesh-system").Delete(ctxFor(t), "mesh", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		res, err := (&install.Verifier{Client: c}).Run(ctxFor(t), demo)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Drifted) != 1 || res.Drifted[0].Ref.Name != "mesh-pilot" || !strings.Contains(res.Drifted[0].Fields[0].Path, "image") {
			t.Errorf("drift not reported as the pilot image: %+v", res.Drifted)
		}
		missing := false
		for _, m := range res.Missing {
			missing = missing || m.Kind == "ConfigMap" && m.Name == "mesh"
		}
		if !missing {
			t.Errorf("deleted ConfigMap mesh not reported missing: %+v", res.Missing)
		}
		if _, err := installer(c).Run(ctxFor(t), demo, demoState); err != nil {
			t.Fatal(err)
		}
		if res, err := (&install.Verifier{Client: c}).Run(ctxFor(t), demo); err != nil || !res.Clean() {
			t.Errorf("after repair: %+v, %v", res, err)
		}
	})

	minimal, minimalState := rendering(t, "", "profile=minimal")
	t.Run("upgrade to minimal prunes both gateways", func(t *testing.T) {
		up := &install.Upgrader{Installer: *installer(c)}
		rec, change, err := up.PlanUpgrade(ctxFor(t), "", "1.0.0")
		if err != nil || rec == nil || change.Kind != "same" {
			t.Fatalf("plan: %+v %+v %v", rec, change, err)
		}
		res, err := up.Run(ctxFor(t), minimal, minimalState)
		if err != nil {
			t.Fatal(err)
		}
		var prunedDeps []string
		for _, r := range res.Pruned {
			if r.Kind == "Deployment" {
				prunedDeps = append(prunedDeps, r.Name)
			}
		}
		if len(prunedDeps) != 2 {
			t.Errorf("want both gateway deployments pruned, pruned %v", res.Pruned)
		}
		deps := deployments(t, c, "default")
		if len(deps) != 1 {
			t.Errorf("after upgrade to minimal, deployments %v", deps)
		}
		if res, err := (&install.Verifier{Client: c}).Run(ctxFor(t), minimal); err != nil || !res.Clean() {
			t.Errorf("verify after upgrade: %+v, %v", res, err)
		}
	})

	t.Run("upgrade refuses a minor skip", func(t *testing.T) {
		up := &install.Upgrader{Installer: *installer(c)}
		_, _, err := up.PlanUpgrade(ctxFor(t), "", "1.2.0")
		var pe *install.VersionPolicyError
		if !errors.As(err, &pe) {
			t.Fatalf("1.0.0 → 1.2.0 not refused: %v", err)
		}
	})

	canary, canaryState := rendering(t, "canary", "profile=minimal")
	t.Run("canary revision side by side, with a tag", func(t *testing.T) {
		if _, err := installer(c).Run(ctxFor(t), canary, canaryState); err != nil {
			t.Fatal(err)
		}
		if d := deployments(t, c, "canary"); len(d) != 1 {
			t.Errorf("canary deployments %v", d)
		}
		if d := deployments(t, c, "default"); len(d) != 1 {
			t.Errorf("default deployments after canary install %v", d)
		}
		if _, err := install.SetTag(ctxFor(t), c, "prod", "canary", false); err != nil {
			t.Fatal(err)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{kube.LabelRevision: "prod"}}}
		if _, err := c.Kube.CoreV1().Namespaces().Create(ctxFor(t), ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tags, err := install.ListTags(ctxFor(t), c)
		if err != nil || len(tags) != 1 || tags[0].Revision != "canary" || !slices.Equal(tags[0].Namespaces, []string{"shop"}) {
			t.Errorf("tags %+v, %v", tags, err)
		}
		if _, err := install.SetTag(ctxFor(t), c, "prod", "default", false); err == nil {
			t.Error("moving a tag without overwrite succeeded")
		}
		if _, err := install.SetTag(ctxFor(t), c, "prod", "default", true); err != nil {
			t.Fatal(err)
		}
		if tg, err := install.GetTag(ctxFor(t), c, "prod"); err != nil || tg.Revision != "default" {
			t.Errorf("after overwrite: %+v %v", tg, err)
		}
		if _, err := install.SetTag(ctxFor(t), c, "prod", "canary", true); err != nil {
			t.Fatal(err)
		}
		// The default revision's re-install must neither prune canary nor the tag.
		res, err := installer(c).Run(ctxFor(t), minimal, minimalState)
		if err != nil || len(res.Pruned) != 0 {
			t.Errorf("re-install of default pruned %v, %v", res.Pruned, err)
		}
		u := &install.Uninstaller{Client: c, Revision: "canary", Wait: true}
		plan, err := u.Plan(ctxFor(t))
		if err != nil {
			t.Fatal(err)
		}
		if plan.Last || len(plan.Namespaces) != 0 {
			t.Errorf("canary uninstall would remove shared objects: %+v", plan)
		}
		if _, err := u.Run(ctxFor(t), plan); err != nil {
			t.Fatal(err)
		}
		if left := meshObjects(t, c, kube.LabelRevision+"=canary"); len(left) != 0 {
			t.Errorf("canary objects left after its uninstall (the tag included): %v", left)
		}
		if d := deployments(t, c, "default"); len(d) != 1 {
			t.Errorf("default revision damaged by the canary uninstall: %v", d)
		}
		_ = c.Kube.CoreV1().Namespaces().Delete(ctxFor(t), "shop", metav1.DeleteOptions{})
	})

	t.Run("interrupted install leaves no webhook", func(t *testing.T) {
		interrupted, st := rendering(t, "interrupt", "profile=minimal")
		ctx, cancel := context.WithCancel(ctxFor(t))
		in := installer(c)
		sawWebhook := false
		in.Progress = func(e install.Event) {
			if e.Kind == install.ObjectApplied && install.IsWebhook(e.Object.Ref) && e.Object.Action == kube.Created {
				sawWebhook = true
				cancel()
			}
		}
		_, err := in.Run(ctx, interrupted, st)
		if err == nil || !sawWebhook {
			t.Fatalf("install was not interrupted after a webhook: err=%v sawWebhook=%v", err, sawWebhook)
		}
		hooks := meshObjects(t, c, kube.LabelRevision+"=interrupt")
		for _, r := range hooks {
			if install.IsWebhook(r) {
				t.Errorf("webhook %s left behind by the interrupted install", r)
			}
		}
		if len(hooks) == 0 {
			t.Error("the interrupted install applied nothing before the webhooks; the test proves nothing")
		}
		u := &install.Uninstaller{Client: c, Revision: "interrupt", Wait: true}
		plan, err := u.Plan(ctxFor(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Run(ctxFor(t), plan); err != nil {
			t.Fatal(err)
		}
		if left := meshObjects(t, c, kube.LabelRevision+"=interrupt"); len(left) != 0 {
			t.Errorf("uninstall did not recover the interrupted install: %v", left)
		}
	})

	t.Run("uninstall keeps user config, purge removes it", func(t *testing.T) {
		uninstall := func(purge bool) *install.UninstallPlan {
			t.Helper()
			u := &install.Uninstaller{Client: c, Purge: purge, Wait: true}
			plan, err := u.Plan(ctxFor(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Run(ctxFor(t), plan); err != nil {
				t.Fatal(err)
			}
			return plan
		}
		// The validation webhook would be called for a new VirtualService, and
		// no pilot answers in the sandbox: create it while no mesh is installed
		// (the CRDs stay after an uninstall), then install and uninstall around it.
		uninstall(false)
		vs := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{"name": "reviews", "namespace": "default"},
			"spec":     map[string]any{"hosts": []any{"reviews"}, "http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "reviews"}}}}}},
		}}
		if _, err := c.Dynamic.Resource(virtualServices).Namespace("default").Create(ctxFor(t), vs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := installer(c).Run(ctxFor(t), minimal, minimalState); err != nil {
			t.Fatal(err)
		}
		plan := uninstall(false)
		if !plan.Last || len(plan.Namespaces) != 1 {
			t.Errorf("last uninstall should remove the namespace: %+v", plan)
		}
		if left := meshObjects(t, c, kube.LabelPartOf+"=mesh"); len(left) != 0 {
			t.Errorf("objects with the mesh's labels left after uninstall: %v", left)
		}
		if _, err := c.Dynamic.Resource(virtualServices).Namespace("default").Get(ctxFor(t), "reviews", metav1.GetOptions{}); err != nil {
			t.Fatalf("user VirtualService gone after a plain uninstall: %v", err)
		}

		if _, err := installer(c).Run(ctxFor(t), minimal, minimalState); err != nil {
			t.Fatal(err)
		}
		plan = uninstall(true)
		if plan.UserCount() != 1 || plan.User[0].Kind != "VirtualService" {
			t.Errorf("purge plan should count the one VirtualService: %+v", plan.User)
		}
		if _, err := c.Dynamic.Resource(virtualServices).Namespace("default").Get(ctxFor(t), "reviews", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("VirtualService still there after --purge: %v", err)
		}
		if _, err := c.Dynamic.Resource(kube.CRDResource()).Get(ctxFor(t), "virtualservices.networking.istio.io", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("CRD still there after --purge: %v", err)
		}
		if left := meshObjects(t, c, kube.LabelPartOf+"=mesh"); len(left) != 0 {
			t.Errorf("objects with the mesh's labels left after purge: %v", left)
		}
	})
}
