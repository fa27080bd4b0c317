package webhook

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// KeepCABundles keeps caPEM in the named webhook configurations until ctx
// ends: at once, whenever one of them is created or changed, and every
// resync besides. The install applies the configurations only after pilot
// is ready, so a poll alone would leave the injector untrusted (pods
// refused with "certificate signed by unknown authority") for up to a
// whole period after the install returns.
func KeepCABundles(ctx context.Context, kube kubernetes.Interface, mutating, validating []string, caPEM func() []byte, resync time.Duration, log *slog.Logger) {
	poke := make(chan struct{}, 1)
	signal := func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { signal() },
		UpdateFunc: func(any, any) { signal() },
	}
	watch := func(name string, kind func(informers.SharedInformerFactory) cache.SharedIndexInformer) {
		f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
		if _, err := kind(f).AddEventHandler(handler); err != nil {
			log.Warn("watch webhook configuration", "name", name, "err", err)
		}
		f.Start(ctx.Done())
	}
	for _, n := range mutating {
		watch(n, func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Admissionregistration().V1().MutatingWebhookConfigurations().Informer()
		})
	}
	for _, n := range validating {
		watch(n, func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Admissionregistration().V1().ValidatingWebhookConfigurations().Informer()
		})
	}
	t := time.NewTicker(resync)
	defer t.Stop()
	for {
		if err := PatchCABundles(ctx, kube, mutating, validating, caPEM()); err != nil && ctx.Err() == nil {
			log.Warn("patch webhook caBundle", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-poke:
		case <-t.C:
		}
	}
}
