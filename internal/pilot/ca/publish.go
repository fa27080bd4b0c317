package ca

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// RootConfigMap is the ConfigMap in every namespace holding the mesh root
// under key root-cert.pem, where workloads find the trust anchor.
const RootConfigMap = "mesh-ca-root-cert"

// Publisher keeps RootConfigMap current in every namespace.
type Publisher struct {
	Kube    kubernetes.Interface
	RootPEM []byte
	Log     *slog.Logger
}

// Run watches namespaces and the root ConfigMaps until ctx ends, writing the
// ConfigMap wherever it is missing or differs.
func (p *Publisher) Run(ctx context.Context) error {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer q.ShutDown()
	f := informers.NewSharedInformerFactory(p.Kube, 0)
	enqueueNS := func(o any) {
		if ns, ok := o.(*corev1.Namespace); ok && ns.DeletionTimestamp == nil {
			q.Add(ns.Name)
		}
	}
	_, _ = f.Core().V1().Namespaces().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueNS, UpdateFunc: func(_, n any) { enqueueNS(n) },
	})
	// Edits to or deletion of a published ConfigMap are undone.
	cmf := informers.NewSharedInformerFactoryWithOptions(p.Kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "metadata.name=" + RootConfigMap
	}))
	enqueueCM := func(o any) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		if cm, ok := o.(*corev1.ConfigMap); ok {
			q.Add(cm.Namespace)
		}
	}
	_, _ = cmf.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, n any) { enqueueCM(n) }, DeleteFunc: enqueueCM,
	})
	f.Start(ctx.Done())
	cmf.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	cmf.WaitForCacheSync(ctx.Done())
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	for {
		ns, quit := q.Get()
		if quit {
			return nil
		}
		if err := p.ensure(ctx, ns); err != nil {
			p.Log.Warn("publish root certificate", "namespace", ns, "err", err)
			q.AddRateLimited(ns)
		} else {
			q.Forget(ns)
		}
		q.Done(ns)
	}
}

func (p *Publisher) ensure(ctx context.Context, ns string) error {
	cms := p.Kube.CoreV1().ConfigMaps(ns)
	want := string(p.RootPEM)
	cm, err := cms.Get(ctx, RootConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootConfigMap, Namespace: ns, Labels: map[string]string{"mesh.io/config": "true"}},
			Data:       map[string]string{KeyRootCert: want},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) || (apierrors.IsForbidden(err) && isTerminating(err)) {
			return nil
		}
		return err
	}
	if err != nil {
		return fmt.Errorf("read configmap: %w", err)
	}
	if cm.Data[KeyRootCert] == want {
		return nil
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[KeyRootCert] = want
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

func isTerminating(err error) bool {
	return apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}
