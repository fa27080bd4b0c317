package manifest

import (
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// applyRank puts kinds in the order they can be applied: definitions and
// namespaces before what lives in them, identities before workloads, and
// admission webhooks last so they cannot block the rest of the install.
var applyRank = map[string]int{
	"CustomResourceDefinition":       0,
	"Namespace":                      1,
	"ResourceQuota":                  2,
	"LimitRange":                     3,
	"ServiceAccount":                 4,
	"Secret":                         5,
	"ConfigMap":                      6,
	"ClusterRole":                    7,
	"ClusterRoleBinding":             8,
	"Role":                           9,
	"RoleBinding":                    10,
	"Service":                        11,
	"DaemonSet":                      12,
	"Deployment":                     13,
	"StatefulSet":                    14,
	"Job":                            15,
	"PodDisruptionBudget":            16,
	"HorizontalPodAutoscaler":        17,
	"MutatingWebhookConfiguration":   101,
	"ValidatingWebhookConfiguration": 102,
}

// rank returns the apply position of kind; unknown kinds (custom resources) go after the built-ins and before webhooks.
func rank(kind string) int {
	if r, ok := applyRank[kind]; ok {
		return r
	}
	return 50
}

// Sort orders objects for applying: by kind rank, then namespace, then name.
func Sort(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if ra, rb := rank(a.GetKind()), rank(b.GetKind()); ra != rb {
			return ra < rb
		}
		if a.GetKind() != b.GetKind() {
			return a.GetKind() < b.GetKind()
		}
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
}

// Key identifies an object across manifests: group/Kind namespace/name.
func Key(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	k := gvk.Kind
	if gvk.Group != "" {
		k = gvk.Group + "/" + k
	}
	if ns := o.GetNamespace(); ns != "" {
		return k + " " + ns + "/" + o.GetName()
	}
	return k + " " + o.GetName()
}
