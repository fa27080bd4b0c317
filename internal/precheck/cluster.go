package precheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

func (c *Checker) namespace(ctx context.Context) (Result, error) {
	r := Result{Name: "Target namespace"}
	ns, err := c.Manifest.Namespace()
	if err != nil {
		return r, err
	}
	err = install.CheckNamespace(ctx, c.Client, ns)
	var term *install.NamespaceTerminatingError
	switch {
	case errors.As(err, &term):
		r.Message = fmt.Sprintf("namespace %s is being deleted", ns)
		r.Remedy = fmt.Sprintf("wait until it is gone (kubectl get namespace %s) and run the install again; if it hangs, look for finalizers on the objects left in it", ns)
		return r, nil
	case err != nil:
		return r, err
	}
	r.Passed = true
	_, err = c.Client.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.Message = fmt.Sprintf("namespace %s does not exist yet; the install creates it", ns)
	case err != nil:
		return r, c.Client.Explain(err)
	default:
		r.Message = fmt.Sprintf("namespace %s exists and is active", ns)
	}
	return r, nil
}

// istioControlPlaneSelectors find an Istio control plane by the labels its charts set.
var istioControlPlaneSelectors = []string{"app=istiod", "istio=pilot"}

func (c *Checker) controlPlanes(ctx context.Context) (Result, error) {
	r := Result{Name: "Existing control planes"}
	var istio []string
	for _, sel := range istioControlPlaneSelectors {
		deps, err := c.Client.Kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return r, c.Client.Explain(err)
		}
		for _, d := range deps.Items {
			if d.Labels[kube.LabelPartOf] == kube.PartOfMesh {
				continue
			}
			if s := fmt.Sprintf("Deployment %s/%s", d.Namespace, d.Name); !slices.Contains(istio, s) {
				istio = append(istio, s)
			}
		}
	}
	recs, err := install.Records(ctx, c.Client)
	if err != nil {
		return r, err
	}
	if len(istio) > 0 {
		r.Message = "an Istio control plane runs in the cluster"
		r.Details = istio
		r.Remedy = "two control planes would both inject sidecars and serve the same config: uninstall Istio first (istioctl uninstall --purge), or install mesh in another cluster"
		return r, nil
	}
	r.Passed = true
	var mine *install.Record
	var others []string
	for _, rec := range recs {
		if rec.Revision == c.Manifest.Revision {
			mine = &rec
		} else {
			others = append(others, rec.Revision)
		}
	}
	switch {
	case mine != nil && c.Mode == ForInstall:
		r.Message = fmt.Sprintf("revision %s is already installed (version %s); installing again reconciles it", mine.Revision, mine.Version)
	case mine != nil:
		r.Message = fmt.Sprintf("revision %s is installed (version %s)", mine.Revision, mine.Version)
	case c.Mode == ForUpgrade:
		r.Passed = false
		r.Message = fmt.Sprintf("revision %s is not installed, so there is nothing to upgrade", c.Manifest.Revision)
		r.Remedy = "use `mesh install`, or pass the --revision of an installed control plane"
	case len(others) > 0:
		r.Message = fmt.Sprintf("revisions %s are installed; %s will run beside them", strings.Join(others, ", "), c.Manifest.Revision)
	default:
		r.Message = "no other service mesh control plane found"
	}
	return r, nil
}

// foreignOwner names the installation that owns a CRD we did not create, or "".
func foreignOwner(labels map[string]string) string {
	switch {
	case labels[kube.LabelPartOf] == kube.PartOfMesh:
		return ""
	case labels[kube.LabelPartOf] != "":
		return labels[kube.LabelPartOf]
	case labels["release"] == "istio", labels["chart"] == "istio", strings.HasPrefix(labels["app"], "istio"):
		return "istio"
	}
	return ""
}

func (c *Checker) crds(ctx context.Context) (Result, error) {
	r := Result{Name: "CRD versions"}
	var checked int
	for _, o := range c.Manifest.Objects() {
		if o.GetKind() != "CustomResourceDefinition" || install.IsGatewayAPICRD(o) {
			continue // the Gateway API's are judged by gatewayAPI
		}
		checked++
		live, err := c.Client.Dynamic.Resource(kube.CRDResource()).Get(ctx, o.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return r, c.Client.Explain(err)
		}
		if owner := foreignOwner(live.GetLabels()); owner != "" {
			r.Details = append(r.Details, fmt.Sprintf("CRD %s belongs to another installation (%s)", o.GetName(), owner))
			continue
		}
		ours := servedVersions(o)
		stored, _, _ := unstructured.NestedStringSlice(live.Object, "status", "storedVersions")
		for _, s := range stored {
			if !slices.Contains(ours, s) {
				r.Details = append(r.Details, fmt.Sprintf("CRD %s has objects stored as %s, a version this mesh does not serve (it serves %s)",
					o.GetName(), s, strings.Join(ours, ", ")))
			}
		}
	}
	if len(r.Details) > 0 {
		r.Message = fmt.Sprintf("%d CRD conflict(s)", len(r.Details))
		r.Remedy = "remove the other installation's CRDs (and its custom resources), or migrate the stored objects to a served version before installing"
		return r, nil
	}
	r.Passed = true
	r.Message = fmt.Sprintf("none of the %d CRDs conflicts with the cluster", checked)
	return r, nil
}

func servedVersions(crd *unstructured.Unstructured) []string {
	vers, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var out []string
	for _, v := range vers {
		vm, _ := v.(map[string]any)
		if name, _ := vm["name"].(string); name != "" {
			out = append(out, name)
		}
	}
	return out
}

var webhookKinds = []schema.GroupVersionKind{
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingWebhookConfiguration"},
}

// injectionLabels are namespace and pod labels that select a sidecar injector.
var injectionLabels = []string{"istio-injection", "istio.io/rev", "mesh-injection", kube.LabelRevision, "sidecar.istio.io/inject", "sidecar.mesh.io/inject"}

func (c *Checker) webhooks(ctx context.Context) (Result, error) {
	r := Result{Name: "Admission webhooks"}
	ours := map[string]bool{}
	for _, o := range c.Manifest.Objects() {
		if install.IsWebhook(kube.RefOf(o)) {
			ours[o.GetKind()+"/"+o.GetName()] = true
		}
	}
	live, err := c.Client.List(ctx, webhookKinds, "")
	if err != nil {
		return r, err
	}
	for _, w := range live {
		labels := w.GetLabels()
		if labels[kube.LabelPartOf] == kube.PartOfMesh {
			continue
		}
		id := w.GetKind() + "/" + w.GetName()
		if ours[id] {
			r.Details = append(r.Details, fmt.Sprintf("%s exists and was not made by mesh; the install would take it over", id))
			continue
		}
		if w.GetKind() == "MutatingWebhookConfiguration" && selectsInjectionLabels(w) {
			r.Details = append(r.Details, fmt.Sprintf("%s is another sidecar injector: it selects pods by injection labels mesh also honours", id))
		}
		if w.GetKind() == "ValidatingWebhookConfiguration" && validatesIstioConfig(w) {
			r.Details = append(r.Details, fmt.Sprintf("%s already validates Istio configuration", id))
		}
	}
	if len(r.Details) > 0 {
		r.Message = fmt.Sprintf("%d webhook collision(s)", len(r.Details))
		r.Remedy = "remove the other control plane's webhook configurations (kubectl delete mutatingwebhookconfiguration/validatingwebhookconfiguration NAME) before installing"
		return r, nil
	}
	r.Passed = true
	r.Message = "no other webhook would collide with the mesh's"
	return r, nil
}

func selectsInjectionLabels(w *unstructured.Unstructured) bool {
	hooks, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
	for _, h := range hooks {
		hm, _ := h.(map[string]any)
		for _, sel := range []string{"namespaceSelector", "objectSelector"} {
			s, _, _ := unstructured.NestedMap(hm, sel)
			if mentionsAny(s, injectionLabels) {
				return true
			}
		}
	}
	return false
}

func validatesIstioConfig(w *unstructured.Unstructured) bool {
	hooks, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
	for _, h := range hooks {
		hm, _ := h.(map[string]any)
		rules, _, _ := unstructured.NestedSlice(hm, "rules")
		for _, rule := range rules {
			groups, _, _ := unstructured.NestedStringSlice(rule.(map[string]any), "apiGroups")
			for _, g := range groups {
				if strings.HasSuffix(g, ".istio.io") {
					return true
				}
			}
		}
	}
	return false
}

// mentionsAny reports whether a label selector refers to any of the keys.
func mentionsAny(sel map[string]any, keys []string) bool {
	ml, _, _ := unstructured.NestedStringMap(sel, "matchLabels")
	for k := range ml {
		if slices.Contains(keys, k) {
			return true
		}
	}
	exprs, _, _ := unstructured.NestedSlice(sel, "matchExpressions")
	for _, e := range exprs {
		em, _ := e.(map[string]any)
		if k, _ := em["key"].(string); slices.Contains(keys, k) {
			return true
		}
	}
	return false
}
