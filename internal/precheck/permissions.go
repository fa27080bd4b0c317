package precheck

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	authv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/kube"
)

// Access is one thing the install needs to be allowed to do.
type Access struct {
	Verb      string `json:"verb"`
	Group     string `json:"group"`
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
}

func (a Access) String() string {
	res := a.Resource
	if a.Group != "" {
		res += "." + a.Group
	}
	if a.Namespace == "" {
		return fmt.Sprintf("%s %s (cluster-wide)", a.Verb, res)
	}
	return fmt.Sprintf("%s %s in namespace %s", a.Verb, res, a.Namespace)
}

// objectVerbs are what install, prune and uninstall do to each rendered object.
var objectVerbs = []string{"get", "create", "patch", "delete"}

// RequiredAccess derives, from the rendering, every verb on every resource
// the install needs: apply and delete for each object, cluster-wide list for
// pruning, and reads of pods, replica sets and events for the readiness wait.
func (c *Checker) RequiredAccess() ([]Access, error) {
	plurals := crdPlurals(c.Manifest.Objects())
	seen := map[Access]bool{}
	var out []Access
	add := func(a Access) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	workloadNamespaces := map[string]bool{}
	for _, o := range c.Manifest.Objects() {
		gvk := o.GroupVersionKind()
		resource, namespaced, err := c.resourceFor(gvk, plurals)
		if err != nil {
			return nil, err
		}
		ns := ""
		if namespaced {
			ns = o.GetNamespace()
		}
		for _, v := range objectVerbs {
			add(Access{Verb: v, Group: gvk.Group, Resource: resource, Namespace: ns})
		}
		add(Access{Verb: "list", Group: gvk.Group, Resource: resource})
		if kube.NeedsWait(kube.RefOf(o)) && namespaced {
			workloadNamespaces[ns] = true
		}
	}
	for ns := range workloadNamespaces {
		for _, r := range []struct{ group, resource string }{{"", "pods"}, {"apps", "replicasets"}, {"", "events"}} {
			add(Access{Verb: "list", Group: r.group, Resource: r.resource, Namespace: ns})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// resourceFor finds the plural resource of a kind, from the cluster or, for
// kinds whose CRD the rendering itself brings, from that CRD.
func (c *Checker) resourceFor(gvk schema.GroupVersionKind, plurals map[schema.GroupKind]crdNames) (string, bool, error) {
	if n, ok := plurals[gvk.GroupKind()]; ok {
		return n.plural, n.namespaced, nil
	}
	m, err := c.Client.RESTMapping(gvk)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return "", false, fmt.Errorf("the cluster does not know %s and the rendering has no CRD for it", gvk)
		}
		return "", false, c.Client.Explain(err)
	}
	return m.Resource.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

type crdNames struct {
	plural     string
	namespaced bool
}

func crdPlurals(objs []*unstructured.Unstructured) map[schema.GroupKind]crdNames {
	out := map[schema.GroupKind]crdNames{}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		plural, _, _ := unstructured.NestedString(o.Object, "spec", "names", "plural")
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		out[schema.GroupKind{Group: group, Kind: kind}] = crdNames{plural: plural, namespaced: scope != "Cluster"}
	}
	return out
}

// Denied asks the API server, one SelfSubjectAccessReview per access, which
// of the accesses the caller lacks.
func Denied(ctx context.Context, c *kube.Client, accesses []Access) ([]Access, error) {
	var mu sync.Mutex
	var denied []Access
	err := kube.ForEach(ctx, accesses, func(ctx context.Context, a Access) error {
		review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authv1.ResourceAttributes{Verb: a.Verb, Group: a.Group, Resource: a.Resource, Namespace: a.Namespace},
		}}
		got, err := c.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("ask whether the caller may %s: %w", a, c.Explain(err))
		}
		if !got.Status.Allowed {
			mu.Lock()
			denied = append(denied, a)
			mu.Unlock()
		}
		return nil
	})
	sort.Slice(denied, func(i, j int) bool { return denied[i].String() < denied[j].String() })
	return denied, err
}

func (c *Checker) permissions(ctx context.Context) (Result, error) {
	r := Result{Name: "Permissions"}
	need, err := c.RequiredAccess()
	if err != nil {
		return r, err
	}
	denied, err := Denied(ctx, c.Client, need)
	if err != nil {
		return r, err
	}
	if len(denied) == 0 {
		r.Passed = true
		r.Message = fmt.Sprintf("the caller may do all %d things the install needs", len(need))
		return r, nil
	}
	r.Message = fmt.Sprintf("the caller lacks %d of the %d permissions the install needs", len(denied), len(need))
	r.Details = summarizeDenied(denied)
	r.Remedy = "run as a cluster administrator, or grant the permissions listed (kubectl auth can-i <verb> <resource> shows each)"
	return r, nil
}

// summarizeDenied groups denied accesses by resource and namespace: "create, patch deployments.apps in namespace mesh-system".
func summarizeDenied(denied []Access) []string {
	type key struct{ group, resource, ns string }
	verbs := map[key][]string{}
	var keys []key
	for _, a := range denied {
		k := key{a.Group, a.Resource, a.Namespace}
		if _, ok := verbs[k]; !ok {
			keys = append(keys, k)
		}
		if !slices.Contains(verbs[k], a.Verb) {
			verbs[k] = append(verbs[k], a.Verb)
		}
	}
	var out []string
	for _, k := range keys {
		a := Access{Verb: strings.Join(verbs[k], ", "), Group: k.group, Resource: k.resource, Namespace: k.ns}
		out = append(out, a.String())
	}
	return out
}
