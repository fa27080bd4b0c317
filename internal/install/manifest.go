// Package install is mesh's action layer for changing a cluster: install,
// upgrade, uninstall and verify a rendered mesh, and keep the record of what
// is installed. Commands build these actions, run them and print the results.
package install

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/kube"
)

// Component is one part of the rendering (base, pilot, a gateway), applied as a unit.
type Component struct {
	Name    string
	Objects []*unstructured.Unstructured
}

// Manifest is a rendering in apply order, prepared for one revision.
type Manifest struct {
	Revision   string
	Components []Component
}

// Prepare copies the rendered components for revision rev and makes sure
// every object carries the labels mesh finds its objects by. Objects every
// revision shares (CRDs, namespaces) lose the revision label, so uninstalling
// one revision never takes them from another.
func Prepare(rev string, comps []Component) Manifest {
	rev = RevisionLabel(rev)
	m := Manifest{Revision: rev}
	for _, c := range comps {
		pc := Component{Name: c.Name}
		for _, o := range c.Objects {
			o = o.DeepCopy()
			labels := o.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			labels[kube.LabelPartOf] = kube.PartOfMesh
			if labels[kube.LabelComponent] == "" {
				labels[kube.LabelComponent] = c.Name
			}
			if Shared(kube.RefOf(o)) {
				delete(labels, kube.LabelRevision)
			} else {
				labels[kube.LabelRevision] = rev
			}
			o.SetLabels(labels)
			setAppliedHash(o)
			pc.Objects = append(pc.Objects, o)
		}
		m.Components = append(m.Components, pc)
	}
	return m
}

// RevisionLabel maps an empty revision to the label value of the default one.
func RevisionLabel(rev string) string {
	if rev == "" {
		return kube.DefaultRevision
	}
	return rev
}

// Shared reports whether every revision of the mesh uses the object, so it
// belongs to none of them.
func Shared(r kube.Ref) bool {
	return r.Group == "apiextensions.k8s.io" && r.Kind == "CustomResourceDefinition" ||
		r.Group == "" && r.Kind == "Namespace"
}

// IsWebhook reports whether the object is an admission webhook configuration.
func IsWebhook(r kube.Ref) bool {
	return r.Group == "admissionregistration.k8s.io" &&
		(r.Kind == "MutatingWebhookConfiguration" || r.Kind == "ValidatingWebhookConfiguration")
}

// Objects returns every object of the manifest in apply order.
func (m Manifest) Objects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, c := range m.Components {
		out = append(out, c.Objects...)
	}
	return out
}

// Kinds returns the distinct kinds in the manifest.
func (m Manifest) Kinds() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, o := range m.Objects() {
		if gvk := o.GroupVersionKind(); !slices.Contains(out, gvk) {
			out = append(out, gvk)
		}
	}
	return out
}

// Namespace returns the namespace the mesh's control plane lives in: the
// Namespace object of the rendering, or the namespace of its first namespaced object.
func (m Manifest) Namespace() (string, error) {
	for _, o := range m.Objects() {
		if r := kube.RefOf(o); r.Group == "" && r.Kind == "Namespace" {
			return r.Name, nil
		}
	}
	for _, o := range m.Objects() {
		if ns := o.GetNamespace(); ns != "" {
			return ns, nil
		}
	}
	return "", fmt.Errorf("the rendering has no namespace")
}

// knownKinds are the kinds a mesh rendering has used; prune and uninstall
// look for leftovers among them as well as among the kinds of the current
// rendering and the ones the installed-state record lists.
var knownKinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "ConfigMap"},
	{Version: "v1", Kind: "Secret"},
	{Version: "v1", Kind: "Service"},
	{Version: "v1", Kind: "ServiceAccount"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"},
	{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"},
	{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingWebhookConfiguration"},
	{Group: "networking.istio.io", Version: "v1", Kind: "Gateway"},
	{Group: "networking.istio.io", Version: "v1alpha3", Kind: "EnvoyFilter"},
	{Group: "install.mesh.io", Version: "v1alpha1", Kind: "MeshOperator"},
}

// searchKinds merges kind lists without duplicates.
func searchKinds(lists ...[]schema.GroupVersionKind) []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, l := range lists {
		for _, k := range l {
			if !slices.ContainsFunc(out, func(o schema.GroupVersionKind) bool { return o.GroupKind() == k.GroupKind() }) {
				out = append(out, k)
			}
		}
	}
	return out
}
