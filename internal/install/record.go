package install

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/kube"
)

// The installed-state record is a MeshOperator custom resource in the mesh's
// namespace, one per revision, written after a successful install.
var recordKind = schema.GroupVersionKind{Group: "install.mesh.io", Version: "v1alpha1", Kind: "MeshOperator"}

// Annotations on the record.
const (
	annotationVersion = "install.mesh.io/version"
	annotationKinds   = "install.mesh.io/kinds"
)

// Record is what the cluster says is installed for one revision.
type Record struct {
	Revision  string         `json:"revision"`
	Namespace string         `json:"namespace"`
	Version   string         `json:"version"`
	Spec      map[string]any `json:"spec"`
	// Kinds are the kinds the install applied, so a later prune or uninstall
	// looks for them even when a newer rendering no longer has them.
	Kinds []schema.GroupVersionKind `json:"-"`
}

// State is what an install records about itself.
type State struct {
	// Version is the mesh version of the rendering.
	Version string
	// Spec is the MeshOperator spec it was rendered from.
	Spec map[string]any
}

// RecordName is the name of the record for a revision.
func RecordName(rev string) string {
	rev = RevisionLabel(rev)
	if rev == kube.DefaultRevision {
		return "installed-state"
	}
	return "installed-state-" + rev
}

func recordObject(rev, namespace string, st State, kinds []schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": st.Spec}}
	if st.Spec == nil {
		u.Object["spec"] = map[string]any{}
	}
	u.SetGroupVersionKind(recordKind)
	u.SetName(RecordName(rev))
	u.SetNamespace(namespace)
	u.SetLabels(map[string]string{
		kube.LabelPartOf:    kube.PartOfMesh,
		kube.LabelComponent: "base",
		kube.LabelRevision:  RevisionLabel(rev),
	})
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		names = append(names, k.Kind+"."+k.Version+"."+k.Group)
	}
	sort.Strings(names)
	u.SetAnnotations(map[string]string{
		annotationVersion: st.Version,
		annotationKinds:   strings.Join(names, ","),
	})
	return u
}

func parseRecord(u *unstructured.Unstructured) Record {
	r := Record{
		Revision:  RevisionLabel(u.GetLabels()[kube.LabelRevision]),
		Namespace: u.GetNamespace(),
		Version:   u.GetAnnotations()[annotationVersion],
	}
	r.Spec, _, _ = unstructured.NestedMap(u.Object, "spec")
	for _, s := range strings.Split(u.GetAnnotations()[annotationKinds], ",") {
		if s == "" {
			continue
		}
		// Kind.version.group, where the group may itself hold dots.
		kind, rest, _ := strings.Cut(s, ".")
		ver, group, _ := strings.Cut(rest, ".")
		r.Kinds = append(r.Kinds, schema.GroupVersionKind{Group: group, Version: ver, Kind: kind})
	}
	return r
}

// Records lists the installed-state records in the cluster, one per
// installed revision. A cluster without the install API has none.
func Records(ctx context.Context, c *kube.Client) ([]Record, error) {
	objs, err := c.List(ctx, []schema.GroupVersionKind{recordKind}, kube.LabelPartOf+"="+kube.PartOfMesh)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read installed state: %w", err)
	}
	var out []Record
	for _, o := range objs {
		out = append(out, parseRecord(o))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}

// FindRecord returns the record of revision rev, or nil when it is not installed.
func FindRecord(ctx context.Context, c *kube.Client, rev string) (*Record, error) {
	recs, err := Records(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Revision == RevisionLabel(rev) {
			return &r, nil
		}
	}
	return nil, nil
}

// Revisions returns the revision names of the records.
func Revisions(recs []Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Revision)
	}
	return out
}
