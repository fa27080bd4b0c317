package precheck_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	admv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/precheck"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
	"mesh.dev/mesh/internal/spec"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

func demo(t *testing.T) install.Manifest {
	t.Helper()
	op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=demo"}})
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
	return install.Prepare("", comps)
}

func check(t *testing.T, cfg *rest.Config) *precheck.Report {
	t.Helper()
	c, err := kube.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := (&precheck.Checker{Client: c, Manifest: demo(t)}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func failed(rep *precheck.Report) map[string]precheck.Result {
	out := map[string]precheck.Result{}
	for _, c := range rep.Checks {
		if !c.Passed {
			out[c.Name] = c
		}
	}
	return out
}

// The tests share one sandbox and change it, so they run in one function, in order.
func TestPrecheck(t *testing.T) {
	sb := sandboxtest.Cluster(t)
	admin := kube.MustClient(sb.RESTConfig())
	ctx := context.Background()

	t.Run("fresh cluster passes", func(t *testing.T) {
		rep := check(t, sb.RESTConfig())
		if !rep.Installable || len(failed(rep)) != 0 {
			t.Fatalf("fresh sandbox not installable: %+v", failed(rep))
		}
		if len(rep.Checks) != 7 {
			t.Errorf("want 7 checks, got %d", len(rep.Checks))
		}
	})

	t.Run("a user who may only read fails the permissions check", func(t *testing.T) {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "precheck-reader"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}}}}
		if _, err := admin.Kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		bind := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "precheck-reader"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "precheck-reader"},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: "reader"}}}
		if _, err := admin.Kube.RbacV1().ClusterRoleBindings().Create(ctx, bind, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cfg, err := sb.UserRESTConfig("reader")
		if err != nil {
			t.Fatal(err)
		}
		rep := check(t, cfg)
		f := failed(rep)
		if rep.Installable || len(f) != 1 {
			t.Fatalf("want only the permissions check to fail, failed: %+v", f)
		}
		perm, ok := f["Permissions"]
		if !ok {
			t.Fatalf("permissions check passed for a read-only user: %+v", rep.Checks)
		}
		joined := strings.Join(perm.Details, "\n")
		for _, want := range []string{"customresourcedefinitions.apiextensions.k8s.io (cluster-wide)", "deployments.apps in namespace mesh-system", "create", "patch"} {
			if !strings.Contains(joined, want) {
				t.Errorf("permission details do not mention %q:\n%s", want, joined)
			}
		}
		if strings.Contains(joined, "get ") || strings.HasPrefix(joined, "get") {
			t.Errorf("details list verbs the user has (get):\n%s", joined)
		}
	})

	t.Run("a user with no rights fails, and says why", func(t *testing.T) {
		cfg, err := sb.UserRESTConfig("nobody")
		if err != nil {
			t.Fatal(err)
		}
		rep := check(t, cfg)
		if rep.Installable {
			t.Fatal("a user without rights may install")
		}
		if _, ok := failed(rep)["Permissions"]; !ok {
			t.Errorf("permissions check passed: %+v", rep.Checks)
		}
	})

	t.Run("an Istio control plane and its injector are found", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}
		if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		one := int32(0)
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system", Labels: map[string]string{"app": "istiod"}},
			Spec: appsv1.DeploymentSpec{Replicas: &one,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "istiod"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "istiod"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "istio/pilot"}}}}},
		}
		if _, err := admin.Kube.AppsV1().Deployments("istio-system").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		none := admv1.SideEffectClassNone
		path := "/inject"
		hook := &admv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector"},
			Webhooks: []admv1.MutatingWebhook{{
				Name:                    "namespace.sidecar-injector.istio.io",
				ClientConfig:            admv1.WebhookClientConfig{Service: &admv1.ServiceReference{Name: "istiod", Namespace: "istio-system", Path: &path}},
				NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"istio-injection": "enabled"}},
				SideEffects:             &none,
				AdmissionReviewVersions: []string{"v1"},
			}},
		}
		if _, err := admin.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, hook, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = admin.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "istio-sidecar-injector", metav1.DeleteOptions{})
			_ = admin.Kube.CoreV1().Namespaces().Delete(ctx, "istio-system", metav1.DeleteOptions{})
		}()
		f := failed(check(t, sb.RESTConfig()))
		if cp, ok := f["Existing control planes"]; !ok || !strings.Contains(strings.Join(cp.Details, " "), "istio-system/istiod") {
			t.Errorf("Istio control plane not reported: %+v", f)
		}
		if wh, ok := f["Admission webhooks"]; !ok || !strings.Contains(strings.Join(wh.Details, " "), "istio-sidecar-injector") {
			t.Errorf("other sidecar injector not reported: %+v", f)
		}
		if len(f) != 2 {
			t.Errorf("want exactly the control plane and webhook checks to fail, got %+v", f)
		}
	})

	t.Run("a terminating namespace fails the check and stops the install", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mesh-system"}}
		if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		hold := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hold", Namespace: "mesh-system", Finalizers: []string{"example.com/hold"}}}
		if _, err := admin.Kube.CoreV1().ConfigMaps("mesh-system").Create(ctx, hold, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := admin.Kube.CoreV1().Namespaces().Delete(ctx, "mesh-system", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_, _ = admin.Kube.CoreV1().ConfigMaps("mesh-system").Patch(ctx, "hold", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
			_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				_, err := admin.Kube.CoreV1().Namespaces().Get(ctx, "mesh-system", metav1.GetOptions{})
				return err != nil, nil
			})
		}()
		f := failed(check(t, sb.RESTConfig()))
		if n, ok := f["Target namespace"]; !ok || !strings.Contains(n.Message, "being deleted") {
			t.Errorf("terminating namespace not reported: %+v", f)
		}
		_, err := (&install.Installer{Client: admin}).Run(ctx, demo(t), install.State{})
		var term *install.NamespaceTerminatingError
		if !errors.As(err, &term) {
			t.Fatalf("install into a terminating namespace: %v", err)
		}
		l, err := admin.Dynamic.Resource(kube.CRDResource()).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelPartOf + "=mesh"})
		if err != nil || len(l.Items) != 0 {
			t.Errorf("the refused install applied %d CRDs (%v)", len(l.Items), err)
		}
	})
}
