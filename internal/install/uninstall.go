package install

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"mesh.dev/mesh/internal/kube"
)

// Uninstaller removes one revision of the mesh, and with Purge the user
// configuration and the CRDs too.
type Uninstaller struct {
	Client   *kube.Client
	Revision string
	// Purge also deletes user configuration (every custom resource of the
	// mesh's CRDs) and the CRDs themselves.
	Purge  bool
	DryRun bool
	// Wait waits until the deleted namespace and CRDs are gone, so an
	// install right after does not meet a terminating namespace.
	Wait    bool
	Timeout time.Duration
}

// UserResources counts the user's objects of one kind that --purge deletes.
type UserResources struct {
	Kind  string `json:"kind"`
	Group string `json:"group"`
	Count int    `json:"count"`
}

// UninstallPlan is what an uninstall will do, for the command to show before it asks.
type UninstallPlan struct {
	Revision string `json:"revision"`
	// Objects are the revision's own objects, webhooks first.
	Objects []kube.Ref `json:"objects"`
	// Last is true when no other revision remains, so shared objects go too.
	Last bool `json:"last"`
	// OtherRevisions are the revisions that stay installed.
	OtherRevisions []string `json:"otherRevisions,omitempty"`
	// Namespaces are the mesh namespaces deleted with the last revision.
	Namespaces []kube.Ref `json:"namespaces,omitempty"`
	// CRDs are deleted with --purge; otherwise they stay (they hold user config) unlabelled.
	CRDs []kube.Ref `json:"crds,omitempty"`
	// User lists the user resources --purge deletes.
	User []UserResources `json:"userResources,omitempty"`

	objects []*unstructured.Unstructured
	crds    []*unstructured.Unstructured
}

// UserCount is the total number of user resources --purge deletes.
func (p *UninstallPlan) UserCount() int {
	n := 0
	for _, u := range p.User {
		n += u.Count
	}
	return n
}

// Empty reports whether there is nothing to uninstall.
func (p *UninstallPlan) Empty() bool {
	return len(p.Objects) == 0 && len(p.Namespaces) == 0 && (len(p.CRDs) == 0 || !p.Last)
}

// OtherRevisionsError refuses --purge while other revisions still use the CRDs.
type OtherRevisionsError struct{ Revisions []string }

func (e *OtherRevisionsError) Error() string {
	return fmt.Sprintf("--purge would delete the CRDs that revisions %v still use: uninstall them first, or drop --purge", e.Revisions)
}

// Plan finds what the uninstall will delete.
func (u *Uninstaller) Plan(ctx context.Context) (*UninstallPlan, error) {
	rev := RevisionLabel(u.Revision)
	p := &UninstallPlan{Revision: rev}
	recs, err := Records(ctx, u.Client)
	if err != nil {
		return nil, err
	}
	var kinds []schema.GroupVersionKind
	for _, r := range recs {
		kinds = append(kinds, r.Kinds...)
	}
	kinds = searchKinds(kinds, knownKinds)
	objs, err := u.Client.List(ctx, kinds, revisionSelector(rev))
	if err != nil {
		return nil, err
	}
	sortForDeletion(objs)
	p.objects = objs
	for _, o := range objs {
		p.Objects = append(p.Objects, kube.RefOf(o))
	}
	others, err := u.Client.List(ctx, kinds, kube.LabelPartOf+"="+kube.PartOfMesh+","+kube.LabelRevision+","+kube.LabelRevision+"!="+rev)
	if err != nil {
		return nil, err
	}
	for _, o := range others {
		if r := o.GetLabels()[kube.LabelRevision]; !slices.Contains(p.OtherRevisions, r) {
			p.OtherRevisions = append(p.OtherRevisions, r)
		}
	}
	sort.Strings(p.OtherRevisions)
	p.Last = len(p.OtherRevisions) == 0
	if u.Purge && !p.Last {
		return nil, &OtherRevisionsError{Revisions: p.OtherRevisions}
	}
	shared, err := u.Client.List(ctx, []schema.GroupVersionKind{
		{Version: "v1", Kind: "Namespace"},
		{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"},
	}, kube.LabelPartOf+"="+kube.PartOfMesh)
	if err != nil {
		return nil, err
	}
	for _, o := range shared {
		r := kube.RefOf(o)
		if r.Kind == "Namespace" {
			if p.Last {
				p.Namespaces = append(p.Namespaces, r)
			}
			continue
		}
		p.crds = append(p.crds, o)
		p.CRDs = append(p.CRDs, r)
	}
	if u.Purge {
		if p.User, err = u.countUserResources(ctx, p.crds); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// countUserResources counts the custom resources of the mesh's CRDs other
// than its own installed-state records.
func (u *Uninstaller) countUserResources(ctx context.Context, crds []*unstructured.Unstructured) ([]UserResources, error) {
	var out []UserResources
	for _, crd := range crds {
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		if group == recordKind.Group && kind == recordKind.Kind {
			continue
		}
		ver := storageVersion(crd)
		l, err := u.Client.Dynamic.Resource(schema.GroupVersionResource{Group: group, Version: ver, Resource: plural}).
			List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("count %s.%s: %w", plural, group, u.Client.Explain(err))
		}
		if len(l.Items) > 0 {
			out = append(out, UserResources{Kind: kind, Group: group, Count: len(l.Items)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group+out[i].Kind < out[j].Group+out[j].Kind })
	return out, nil
}

func storageVersion(crd *unstructured.Unstructured) string {
	vers, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	first := ""
	for _, v := range vers {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		if first == "" {
			first = name
		}
		if st, _ := vm["storage"].(bool); st {
			return name
		}
	}
	return first
}

// UninstallResult is what the uninstall deleted.
type UninstallResult struct {
	Deleted []kube.Ref `json:"deleted"`
	// Unlabelled are CRDs kept for the user's config, with the mesh's labels removed.
	Unlabelled []kube.Ref `json:"unlabelled,omitempty"`
	DryRun     bool       `json:"dryRun,omitempty"`
}

// Run carries out the plan: webhooks first, then the revision's objects, then
// (last revision only) the namespace, and the CRDs with --purge or their labels without.
func (u *Uninstaller) Run(ctx context.Context, p *UninstallPlan) (*UninstallResult, error) {
	res := &UninstallResult{DryRun: u.DryRun}
	wait := u.Wait && !u.DryRun
	opts := kube.DeleteOptions{DryRun: u.DryRun, Foreground: wait}
	deleted, err := deleteAll(ctx, u.Client, p.objects, opts)
	res.Deleted = append(res.Deleted, deleted...)
	if err != nil {
		return res, err
	}
	waitFor := slices.Clone(deleted)
	if !p.Last {
		if wait {
			return res, waitGone(ctx, u.Client, waitFor, u.Timeout)
		}
		return res, nil
	}
	for _, r := range p.Namespaces {
		if err := u.Client.Delete(ctx, r, opts); err != nil {
			return res, err
		}
		res.Deleted = append(res.Deleted, r)
		waitFor = append(waitFor, r)
	}
	for _, crd := range p.crds {
		r := kube.RefOf(crd)
		if u.Purge {
			if err := u.Client.Delete(ctx, r, opts); err != nil {
				return res, err
			}
			res.Deleted = append(res.Deleted, r)
			waitFor = append(waitFor, r)
			continue
		}
		if err := unlabel(ctx, u.Client, r, u.DryRun); err != nil {
			return res, err
		}
		res.Unlabelled = append(res.Unlabelled, r)
	}
	if wait {
		if err := waitGone(ctx, u.Client, waitFor, u.Timeout); err != nil {
			return res, err
		}
	}
	return res, nil
}

// unlabel removes the mesh's labels from an object that outlives the mesh.
func unlabel(ctx context.Context, c *kube.Client, r kube.Ref, dryRun bool) error {
	ri, _, err := c.Resource(r)
	if err != nil {
		return err
	}
	patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:null,%q:null,%q:null}}}`, kube.LabelPartOf, kube.LabelComponent, kube.LabelRevision))
	po := metav1.PatchOptions{FieldManager: kube.FieldManager}
	if dryRun {
		po.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := ri.Patch(ctx, r.Name, types.MergePatchType, patch, po); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove the mesh labels from %s: %w", r, c.Explain(err))
	}
	return nil
}

// waitGone polls until every object is gone.
func waitGone(ctx context.Context, c *kube.Client, refs []kube.Ref, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	for _, r := range refs {
		ri, _, err := c.Resource(r)
		if err != nil {
			continue
		}
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			_, err := ri.Get(ctx, r.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
		if err != nil {
			return fmt.Errorf("wait for %s to be deleted: %w", r, err)
		}
	}
	return nil
}
