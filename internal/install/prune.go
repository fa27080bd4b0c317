package install

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/kube"
)

// revisionSelector selects the objects one revision of the mesh owns.
func revisionSelector(rev string) string {
	return kube.LabelPartOf + "=" + kube.PartOfMesh + "," + kube.LabelRevision + "=" + RevisionLabel(rev)
}

// Leftovers returns the revision's objects in the cluster that m does not
// contain: what a prune removes. Revision tags and the record are not leftovers.
func Leftovers(ctx context.Context, c *kube.Client, m Manifest, kinds []schema.GroupVersionKind) ([]*unstructured.Unstructured, error) {
	want := map[string]bool{}
	for _, o := range m.Objects() {
		want[kube.RefOf(o).Key()] = true
	}
	live, err := c.List(ctx, kinds, revisionSelector(m.Revision))
	if err != nil {
		return nil, fmt.Errorf("find objects to prune: %w", err)
	}
	var out []*unstructured.Unstructured
	for _, o := range live {
		r := kube.RefOf(o)
		switch {
		case want[r.Key()], Shared(r), o.GetLabels()[kube.LabelTag] != "",
			r.GVK().GroupKind() == recordKind.GroupKind():
			continue
		}
		out = append(out, o)
	}
	sortForDeletion(out)
	return out, nil
}

// sortForDeletion puts webhooks first, so nothing calls into a server being
// removed, and otherwise orders by kind and name for stable output.
func sortForDeletion(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := kube.RefOf(objs[i]), kube.RefOf(objs[j])
		if IsWebhook(a) != IsWebhook(b) {
			return IsWebhook(a)
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

// deleteAll deletes webhooks first, one by one, then the rest in parallel.
func deleteAll(ctx context.Context, c *kube.Client, objs []*unstructured.Unstructured, opts kube.DeleteOptions) ([]kube.Ref, error) {
	var hooks, rest []kube.Ref
	for _, o := range objs {
		if r := kube.RefOf(o); IsWebhook(r) {
			hooks = append(hooks, r)
		} else {
			rest = append(rest, r)
		}
	}
	for _, r := range hooks {
		if err := c.Delete(ctx, r, opts); err != nil {
			return nil, err
		}
	}
	if err := kube.ForEach(ctx, rest, func(ctx context.Context, r kube.Ref) error { return c.Delete(ctx, r, opts) }); err != nil {
		return nil, err
	}
	return append(hooks, rest...), nil
}

func (i *Installer) prune(ctx context.Context, m Manifest, kinds []schema.GroupVersionKind) ([]kube.Ref, error) {
	left, err := Leftovers(ctx, i.Client, m, kinds)
	if err != nil || len(left) == 0 {
		return nil, err
	}
	pruned, err := deleteAll(ctx, i.Client, left, kube.DeleteOptions{DryRun: i.DryRun})
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	return pruned, nil
}
