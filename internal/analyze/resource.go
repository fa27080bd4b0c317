package analyze

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"mesh.dev/mesh/internal/resource"
	"mesh.dev/mesh/internal/validation"
)

// Resource is one object in the snapshot.
type Resource struct {
	Group     string
	Version   string
	Kind      string
	Name      string
	Namespace string // "" for cluster-scoped objects
	// Source is the file and line the object was read from; empty for
	// objects read from the cluster.
	Source resource.Source
	// Object is the typed object: an istio.io/client-go type for Istio
	// resources, a k8s.io/api type for the Kubernetes kinds analyzers read,
	// and nil for other kinds.
	Object runtime.Object
	// Meta is the object's metadata, set for every kind.
	Meta *metav1.ObjectMeta
	// Decoded holds schema findings for Istio resources (nil otherwise).
	Decoded *validation.Decoded
	seq     int
}

// Ref names the resource as users write it in -S: "Kind name.namespace"
// (or "Kind name" when cluster-scoped).
func (r *Resource) Ref() string {
	if r.Namespace == "" {
		return fmt.Sprintf("%s %s", r.Kind, r.Name)
	}
	return fmt.Sprintf("%s %s.%s", r.Kind, r.Name, r.Namespace)
}

// ScopeNamespace is the namespace the resource belongs to for -n: its own,
// or its name for a Namespace object.
func (r *Resource) ScopeNamespace() string {
	if r.Kind == "Namespace" && r.Group == "" {
		return r.Name
	}
	return r.Namespace
}

// Labels returns the object's labels.
func (r *Resource) Labels() map[string]string { return r.Meta.Labels }

// Annotations returns the object's annotations.
func (r *Resource) Annotations() map[string]string { return r.Meta.Annotations }

type resourceKey struct{ group, kind, namespace, name string }

func (r *Resource) key() resourceKey { return resourceKey{r.Group, r.Kind, r.Namespace, r.Name} }

// clusterScoped are the kinds that have no namespace; objects of other
// kinds read without one are placed in the default namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"CustomResourceDefinition": true, "StorageClass": true, "PriorityClass": true, "APIService": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true, "IngressClass": true,
	"RuntimeClass": true, "CSIDriver": true, "GatewayClass": true,
}
