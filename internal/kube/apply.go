package kube

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// Action says what an apply did to one object.
type Action string

// The outcomes of applying one object.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Deleted    Action = "deleted"
)

// ApplyOptions tune one server-side apply.
type ApplyOptions struct {
	// DryRun asks the server to validate and default without persisting.
	DryRun bool
	// Current, when set, is asked about the live object before sending: when
	// it says the live object already holds everything the apply would set,
	// nothing is sent. A no-op apply of a large object (a CRD with its
	// schema) costs the server real work, and a re-install is mostly no-ops.
	Current func(live *unstructured.Unstructured) bool
}

// Resource returns the dynamic client for obj's kind, namespaced when the kind is.
func (c *Client) Resource(ref Ref) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	m, err := c.RESTMapping(ref.GVK())
	if err != nil {
		return nil, nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if ref.Namespace == "" {
			return nil, nil, fmt.Errorf("%s: a %s needs a namespace", ref, ref.Kind)
		}
		return c.Dynamic.Resource(m.Resource).Namespace(ref.Namespace), m, nil
	}
	return c.Dynamic.Resource(m.Resource), m, nil
}

// Apply sends obj with server-side apply under mesh's field manager, taking
// over conflicting fields (mesh owns what it renders), and reports whether the
// object was created, changed or left as it was.
func (c *Client) Apply(ctx context.Context, obj *unstructured.Unstructured, opts ApplyOptions) (Action, *unstructured.Unstructured, error) {
	ref := RefOf(obj)
	ri, _, err := c.Resource(ref)
	if err != nil {
		return "", nil, err
	}
	before, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		before = nil
	case err != nil:
		return "", nil, fmt.Errorf("read %s: %w", ref, c.Explain(err))
	}
	if before != nil && opts.Current != nil && opts.Current(before) {
		return Unchanged, before, nil
	}
	body, err := runtime.Encode(unstructured.UnstructuredJSONScheme, obj)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", ref, err)
	}
	force := true
	po := metav1.PatchOptions{FieldManager: FieldManager, Force: &force}
	if opts.DryRun {
		po.DryRun = []string{metav1.DryRunAll}
	}
	after, err := ri.Patch(ctx, ref.Name, types.ApplyPatchType, body, po)
	if err != nil {
		return "", nil, fmt.Errorf("apply %s: %w", ref, c.Explain(err))
	}
	switch {
	case before == nil:
		return Created, after, nil
	case !opts.DryRun && before.GetResourceVersion() == after.GetResourceVersion():
		return Unchanged, after, nil
	case opts.DryRun && sameContent(before, after):
		return Unchanged, after, nil
	}
	return Configured, after, nil
}

// sameContent compares two versions of an object, ignoring bookkeeping the
// server changes on every write.
func sameContent(a, b *unstructured.Unstructured) bool {
	strip := func(u *unstructured.Unstructured) map[string]any {
		c := u.DeepCopy().Object
		md, _ := c["metadata"].(map[string]any)
		for _, k := range []string{"managedFields", "resourceVersion", "generation"} {
			delete(md, k)
		}
		return c
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

// DeleteOptions tune one delete.
type DeleteOptions struct {
	DryRun bool
	// Foreground keeps the object until the garbage collector has removed its
	// dependents (a Deployment's ReplicaSets and Pods), so waiting for the
	// object to disappear waits for them too.
	Foreground bool
}

// Delete removes the object named by ref; an object already gone, or of a
// kind the cluster no longer serves, counts as deleted.
func (c *Client) Delete(ctx context.Context, ref Ref, opts DeleteOptions) error {
	ri, _, err := c.Resource(ref)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil
		}
		return err
	}
	policy := metav1.DeletePropagationBackground
	if opts.Foreground {
		policy = metav1.DeletePropagationForeground
	}
	do := metav1.DeleteOptions{PropagationPolicy: &policy}
	if opts.DryRun {
		do.DryRun = []string{metav1.DryRunAll}
	}
	if err := ri.Delete(ctx, ref.Name, do); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", ref, c.Explain(err))
	}
	return nil
}
