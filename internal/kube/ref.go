package kube

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Labels every object mesh renders carries; they are how install, prune,
// uninstall and verify-install find the mesh's objects in a cluster.
const (
	LabelPartOf    = "app.kubernetes.io/part-of"
	PartOfMesh     = "mesh"
	LabelComponent = "install.mesh.io/component"
	LabelRevision  = "mesh.io/rev"
	// LabelTag marks a revision-tag webhook made by `mesh tag set`; installs never prune it.
	LabelTag = "mesh.io/tag"
	// DefaultRevision is the value of LabelRevision for an install without --revision.
	DefaultRevision = "default"
)

// Ref names one object in a cluster.
type Ref struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RefOf returns the Ref of obj.
func RefOf(obj *unstructured.Unstructured) Ref {
	gvk := obj.GroupVersionKind()
	return Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// GVK returns the group, version and kind of the object.
func (r Ref) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// Key identifies the object regardless of the API version it is read at.
func (r Ref) Key() string {
	return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

// String prints the ref the way kubectl names objects: kind/name (-n namespace).
func (r Ref) String() string {
	if r.Namespace == "" {
		return fmt.Sprintf("%s/%s", r.Kind, r.Name)
	}
	return fmt.Sprintf("%s/%s -n %s", r.Kind, r.Name, r.Namespace)
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// CRDResource is the resource of CustomResourceDefinitions.
func CRDResource() schema.GroupVersionResource { return crdResource }
