package precheck_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// base is the demo rendering's base component alone: the CRDs, the
// namespace and RBAC, which is what the Gateway API cases install.
func base(t *testing.T) install.Manifest {
	m := demo(t)
	for _, c := range m.Components {
		if c.Name == "base" {
			return install.Prepare("", []install.Component{c})
		}
	}
	t.Fatal("demo rendering has no base component")
	return install.Manifest{}
}

// foreignGatewayCRD creates the rendering's Gateway CRD as another
// installation would have it: without mesh's labels, with the given
// channel and bundle version.
func foreignGatewayCRD(t *testing.T, c *kube.Client, channel, version string) {
	t.Helper()
	var crd *unstructured.Unstructured
	for _, o := range demo(t).Objects() {
		if o.GetKind() == "CustomResourceDefinition" && o.GetName() == "gateways.gateway.networking.k8s.io" {
			crd = o.DeepCopy()
		}
	}
	if crd == nil {
		t.Fatal("the demo rendering has no Gateway API Gateway CRD")
	}
	crd.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "someone-else"})
	ann := crd.GetAnnotations()
	ann["gateway.networking.k8s.io/channel"] = channel
	ann["gateway.networking.k8s.io/bundle-version"] = version
	crd.SetAnnotations(ann)
	ctx := context.Background()
	if _, err := c.Dynamic.Resource(kube.CRDResource()).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Dynamic.Resource(kube.CRDResource()).Delete(ctx, crd.GetName(), metav1.DeleteOptions{})
		_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := c.Dynamic.Resource(kube.CRDResource()).Get(ctx, crd.GetName(), metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	})
}

func TestGatewayAPICRDs(t *testing.T) {
	sb := sandboxtest.Cluster(t)
	admin := kube.MustClient(sb.RESTConfig())
	ctx := context.Background()
	result := func(t *testing.T) (bool, string, []string) {
		rep := check(t, sb.RESTConfig())
		for _, r := range rep.Checks {
			if r.Name == "Gateway API CRDs" {
				return r.Passed, r.Message, r.Details
			}
		}
		t.Fatalf("no Gateway API CRDs check in %+v", rep.Checks)
		return false, "", nil
	}

	t.Run("absent: the install adds the standard channel", func(t *testing.T) {
		ok, msg, _ := result(t)
		if !ok || !strings.Contains(msg, "not installed; the install adds the standard channel v1.6.3") {
			t.Errorf("passed=%v message=%q", ok, msg)
		}
	})

	t.Run("a newer standard release of another installation is left alone", func(t *testing.T) {
		foreignGatewayCRD(t, admin, "standard", "v1.7.0")
		ok, msg, details := result(t)
		if !ok || !strings.Contains(msg, "standard v1.7.0 (1 CRDs)") || !strings.Contains(msg, "left as they are") ||
			len(details) != 1 || !strings.Contains(details[0], "gateways.gateway.networking.k8s.io (standard v1.7.0)") {
			t.Fatalf("passed=%v message=%q details=%q", ok, msg, details)
		}
		if _, err := (&install.Installer{Client: admin}).Run(ctx, base(t), install.State{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { uninstallBase(t, admin) })
		live, err := admin.Dynamic.Resource(kube.CRDResource()).Get(ctx, "gateways.gateway.networking.k8s.io", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v := live.GetAnnotations()["gateway.networking.k8s.io/bundle-version"]; v != "v1.7.0" || live.GetLabels()[kube.LabelPartOf] == kube.PartOfMesh {
			t.Errorf("the install took over the other installation's CRD: version %s labels %v", v, live.GetLabels())
		}
		route, err := admin.Dynamic.Resource(kube.CRDResource()).Get(ctx, "httproutes.gateway.networking.k8s.io", metav1.GetOptions{})
		if err != nil || route.GetLabels()[kube.LabelPartOf] != kube.PartOfMesh {
			t.Errorf("the install did not add the missing HTTPRoute CRD as mesh's: %v", err)
		}
		vr, err := (&install.Verifier{Client: admin}).Run(ctx, base(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(vr.Drifted) != 0 {
			t.Errorf("verify reports the kept CRD as drift: %+v", vr.Drifted)
		}
	})

	for _, tc := range []struct{ name, channel, version, want string }{
		{"an experimental channel install conflicts", "experimental", "v1.6.3", "it is the experimental channel (v1.6.3)"},
		{"an older release conflicts", "standard", "v1.4.1", "it is v1.4.1, older than the v1.6.3 mesh is built for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			foreignGatewayCRD(t, admin, tc.channel, tc.version)
			rep := check(t, sb.RESTConfig())
			f := failed(rep)["Gateway API CRDs"]
			if rep.Installable || len(f.Details) != 1 || !strings.Contains(f.Details[0], tc.want) ||
				!strings.Contains(f.Remedy, "enableGatewayAPICRDs=false") {
				t.Fatalf("installable=%v check=%+v", rep.Installable, f)
			}
			_, err := (&install.Installer{Client: admin}).Run(ctx, base(t), install.State{})
			t.Cleanup(func() { uninstallBase(t, admin) })
			if err == nil || !strings.Contains(err.Error(), "CRD gateways.gateway.networking.k8s.io belongs to another installation and "+tc.want) {
				t.Fatalf("install over a conflicting CRD: %v", err)
			}
			live, err := admin.Dynamic.Resource(kube.CRDResource()).Get(ctx, "gateways.gateway.networking.k8s.io", metav1.GetOptions{})
			if err != nil || live.GetAnnotations()["gateway.networking.k8s.io/channel"] != tc.channel {
				t.Errorf("the refused install changed the CRD: %v %v", err, live.GetAnnotations())
			}
		})
	}
}

// uninstallBase removes what installing base left: mesh's CRDs, the
// namespace and the install record, so later tests see a fresh cluster.
// The API server deletes a CRD only after its cleanup finalizer has run,
// which took over a minute in CI while the e2e and conformance packages ran
// beside this one: the bound is generous, it is not what is tested.
func uninstallBase(t *testing.T, c *kube.Client) {
	ctx := context.Background()
	u := &install.Uninstaller{Client: c, Revision: "default", Purge: true, Wait: true, Timeout: 3 * time.Minute}
	p, err := u.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Run(ctx, p); err != nil {
		t.Fatal(err)
	}
}
