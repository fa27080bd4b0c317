package install

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mesh.dev/mesh/internal/kube"
)

var webhookKinds = []schema.GroupVersionKind{
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingWebhookConfiguration"},
}

// webhookLedger remembers the webhook configurations one install run
// touched and what they were before, so a failed run can take them back.
type webhookLedger struct {
	mu      sync.Mutex
	entries []webhookEntry
}

type webhookEntry struct {
	ref    kube.Ref
	before *unstructured.Unstructured // nil when this run created it
}

func (l *webhookLedger) remember(ctx context.Context, c *kube.Client, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	ri, _, err := c.Resource(kube.RefOf(o))
	if err != nil {
		return nil, err
	}
	before, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", kube.RefOf(o), c.Explain(err))
	}
	return before, nil
}

func (l *webhookLedger) applied(ref kube.Ref, before *unstructured.Unstructured, action kube.Action) {
	if action == kube.Unchanged {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, webhookEntry{ref: ref, before: before})
}

// rollbackWebhooks deletes the webhook configurations the run created and
// puts back the webhooks of the ones it changed. ctx must outlive the
// cancellation that caused the rollback.
func (i *Installer) rollbackWebhooks(ctx context.Context, l *webhookLedger) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	var firstErr error
	for n := len(l.entries) - 1; n >= 0; n-- {
		e := l.entries[n]
		var err error
		if e.before == nil {
			err = i.Client.Delete(ctx, e.ref, kube.DeleteOptions{})
			i.log().Info("removed webhook configuration created by the interrupted install", "object", e.ref.String())
		} else {
			err = restoreWebhooks(ctx, i.Client, e)
			i.log().Info("restored webhook configuration changed by the interrupted install", "object", e.ref.String())
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("take back %s after the failed install: %w", e.ref, err)
		}
	}
	return firstErr
}

func restoreWebhooks(ctx context.Context, c *kube.Client, e webhookEntry) error {
	ri, _, err := c.Resource(e.ref)
	if err != nil {
		return err
	}
	cur, err := ri.Get(ctx, e.ref.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Object["webhooks"] = e.before.Object["webhooks"]
	cur.SetLabels(e.before.GetLabels())
	_, err = ri.Update(ctx, cur, metav1.UpdateOptions{FieldManager: kube.FieldManager})
	return err
}

// recoverWebhooks removes this revision's webhook configurations whose
// service is gone: what an install killed before it could clean up leaves behind.
func (i *Installer) recoverWebhooks(ctx context.Context, rev string) error {
	objs, err := i.Client.List(ctx, webhookKinds, kube.LabelPartOf+"="+kube.PartOfMesh+","+kube.LabelRevision+"="+rev)
	if err != nil {
		return err
	}
	for _, o := range objs {
		dangling, err := danglingWebhook(ctx, i.Client, o)
		if err != nil {
			return err
		}
		if dangling {
			i.log().Info("removing webhook configuration whose service is gone", "object", kube.RefOf(o).String())
			if err := i.Client.Delete(ctx, kube.RefOf(o), kube.DeleteOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// danglingWebhook reports whether any webhook of the configuration calls a
// Service that does not exist.
func danglingWebhook(ctx context.Context, c *kube.Client, o *unstructured.Unstructured) (bool, error) {
	hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
	for _, h := range hooks {
		hm, _ := h.(map[string]any)
		ns, _, _ := unstructured.NestedString(hm, "clientConfig", "service", "namespace")
		name, _, _ := unstructured.NestedString(hm, "clientConfig", "service", "name")
		if name == "" {
			continue
		}
		_, err := c.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("read service %s/%s: %w", ns, name, c.Explain(err))
		}
	}
	return false, nil
}
