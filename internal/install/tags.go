package install

import (
	"context"
	"fmt"
	"slices"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"mesh.dev/mesh/internal/kube"
)

// A revision tag is a MutatingWebhookConfiguration copied from a revision's
// sidecar injector, selecting namespaces labelled mesh.io/rev=<tag>. It
// carries the revision's labels, so uninstalling the revision removes it with
// the control plane it calls.

// Tag is one revision tag.
type Tag struct {
	Tag        string   `json:"tag"`
	Revision   string   `json:"revision"`
	Namespaces []string `json:"namespaces,omitempty"`
}

// TagWebhookName is the name of the webhook configuration of a tag.
func TagWebhookName(tag string) string { return "mesh-revision-tag-" + tag }

// ValidateTagName checks that a tag can be a label value and a name.
func ValidateTagName(tag string) error {
	if errs := validation.IsDNS1123Label(tag); len(errs) > 0 {
		return fmt.Errorf("tag %q: %s", tag, errs[0])
	}
	if tag == kube.DefaultRevision {
		return fmt.Errorf("tag %q: the name is the default revision's; pick another", tag)
	}
	return nil
}

// SetTag points tag at revision rev, creating or (with overwrite) moving it.
func SetTag(ctx context.Context, c *kube.Client, tag, rev string, overwrite bool) (*Tag, error) {
	recs, err := Records(ctx, c)
	if err != nil {
		return nil, err
	}
	revs := Revisions(recs)
	if !slices.Contains(revs, rev) {
		return nil, &NotInstalledError{Revision: rev, Installed: revs}
	}
	if slices.Contains(revs, tag) {
		return nil, fmt.Errorf("tag %q has the name of an installed revision: pick another name", tag)
	}
	if cur, err := GetTag(ctx, c, tag); err == nil && cur.Revision != rev && !overwrite {
		return nil, fmt.Errorf("tag %s already points at revision %s: pass --overwrite to move it to %s", tag, cur.Revision, rev)
	}
	injector, err := revisionInjector(ctx, c, rev)
	if err != nil {
		return nil, err
	}
	obj := tagWebhook(injector, tag, rev)
	if _, _, err := c.Apply(ctx, obj, kube.ApplyOptions{}); err != nil {
		return nil, err
	}
	return GetTag(ctx, c, tag)
}

// revisionInjector finds the sidecar injector webhook configuration of a revision.
func revisionInjector(ctx context.Context, c *kube.Client, rev string) (*unstructured.Unstructured, error) {
	objs, err := c.List(ctx, webhookKinds[:1], revisionSelector(rev)+",!"+kube.LabelTag)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.GetLabels()[kube.LabelTag] == "" {
			return o, nil
		}
	}
	return nil, fmt.Errorf("revision %s has no sidecar injector webhook: reinstall it (mesh install --revision %s)", rev, rev)
}

// tagWebhook copies the injector's webhooks, selecting namespaces labelled with the tag.
func tagWebhook(injector *unstructured.Unstructured, tag, rev string) *unstructured.Unstructured {
	hooks, _, _ := unstructured.NestedSlice(injector.Object, "webhooks")
	var out []any
	for _, h := range hooks {
		hm := deepCopyMap(h.(map[string]any))
		name, _ := hm["name"].(string)
		hm["name"] = tag + ".tag." + name
		hm["namespaceSelector"] = map[string]any{"matchExpressions": []any{
			map[string]any{"key": kube.LabelRevision, "operator": "In", "values": []any{tag}},
			map[string]any{"key": "mesh-injection", "operator": "DoesNotExist"},
			map[string]any{"key": "istio-injection", "operator": "DoesNotExist"},
		}}
		out = append(out, hm)
		// Every injector entry calls the same service; one entry per tag is enough.
		break
	}
	u := &unstructured.Unstructured{Object: map[string]any{"webhooks": out}}
	u.SetAPIVersion("admissionregistration.k8s.io/v1")
	u.SetKind("MutatingWebhookConfiguration")
	u.SetName(TagWebhookName(tag))
	u.SetLabels(map[string]string{
		kube.LabelPartOf:    kube.PartOfMesh,
		kube.LabelComponent: "pilot",
		kube.LabelRevision:  rev,
		kube.LabelTag:       tag,
	})
	return u
}

func deepCopyMap(m map[string]any) map[string]any {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}

// ListTags returns every revision tag with the namespaces that use it.
func ListTags(ctx context.Context, c *kube.Client) ([]Tag, error) {
	objs, err := c.List(ctx, webhookKinds[:1], kube.LabelPartOf+"="+kube.PartOfMesh+","+kube.LabelTag)
	if err != nil {
		return nil, err
	}
	var out []Tag
	for _, o := range objs {
		t := Tag{Tag: o.GetLabels()[kube.LabelTag], Revision: o.GetLabels()[kube.LabelRevision]}
		if t.Namespaces, err = namespacesUsing(ctx, c, t.Tag); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out, nil
}

// TagNotFoundError names a tag that does not exist.
type TagNotFoundError struct{ Tag string }

func (e *TagNotFoundError) Error() string {
	return fmt.Sprintf("tag %s does not exist (`mesh tag list` shows the tags)", e.Tag)
}

// GetTag returns one tag.
func GetTag(ctx context.Context, c *kube.Client, tag string) (*Tag, error) {
	w, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, TagWebhookName(tag), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && w.Labels[kube.LabelTag] != tag {
		return nil, &TagNotFoundError{Tag: tag}
	}
	if err != nil {
		return nil, c.Explain(err)
	}
	t := &Tag{Tag: tag, Revision: w.Labels[kube.LabelRevision]}
	if t.Namespaces, err = namespacesUsing(ctx, c, tag); err != nil {
		return nil, err
	}
	return t, nil
}

// RemoveTag deletes a tag's webhook configuration.
func RemoveTag(ctx context.Context, c *kube.Client, tag string) error {
	if _, err := GetTag(ctx, c, tag); err != nil {
		return err
	}
	return c.Delete(ctx, kube.Ref{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration", Name: TagWebhookName(tag)}, kube.DeleteOptions{})
}

func namespacesUsing(ctx context.Context, c *kube.Client, tag string) ([]string, error) {
	l, err := c.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRevision + "=" + tag})
	if err != nil {
		return nil, c.Explain(err)
	}
	var out []string
	for _, ns := range l.Items {
		out = append(out, ns.Name)
	}
	return out, nil
}
