package kube

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// List returns every object of the given kinds, in all namespaces, that
// matches the label selector. Kinds the cluster does not serve are skipped.
func (c *Client) List(ctx context.Context, gvks []schema.GroupVersionKind, selector string) ([]*unstructured.Unstructured, error) {
	var mu sync.Mutex
	var out []*unstructured.Unstructured
	seen := map[schema.GroupResource]bool{}
	var mappings []*meta.RESTMapping
	for _, gvk := range gvks {
		m, err := c.RESTMapping(gvk)
		if err != nil {
			if meta.IsNoMatchError(err) {
				continue
			}
			return nil, c.Explain(err)
		}
		if seen[m.Resource.GroupResource()] {
			continue
		}
		seen[m.Resource.GroupResource()] = true
		mappings = append(mappings, m)
	}
	err := ForEach(ctx, mappings, func(ctx context.Context, m *meta.RESTMapping) error {
		l, err := c.Dynamic.Resource(m.Resource).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", m.Resource.GroupResource(), c.Explain(err))
		}
		mu.Lock()
		defer mu.Unlock()
		for i := range l.Items {
			item := &l.Items[i]
			item.SetGroupVersionKind(m.GroupVersionKind)
			out = append(out, item)
		}
		return nil
	})
	return out, err
}
