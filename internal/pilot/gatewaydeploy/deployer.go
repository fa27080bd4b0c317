// Package gatewaydeploy is the automated deployment of Gateway API
// Gateways, as istiod's: for every Gateway of mesh's classes pilot applies
// a ServiceAccount, a Deployment running mesh-proxy as the Gateway's router
// and a Service, in the Gateway's namespace, and removes them when the
// Gateway is gone or no longer mesh's.
package gatewaydeploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/pilot/model"
)

// FieldManager is the server-side apply manager of what pilot deploys.
const FieldManager = "mesh-pilot"

// reapply is how often an unchanged object is applied again anyway, so a
// Deployment or ServiceAccount someone deleted or edited comes back (the
// snapshot pilot works from has Services, not Deployments).
const reapply = time.Minute

// Deployer applies the objects of each Gateway in the snapshots it is
// given. It is run by the status writer's leader, so one replica writes.
type Deployer struct {
	Kube kubernetes.Interface
	// Values are the injector values: the proxy image and pilot's
	// addresses, the same a sidecar gets.
	Values func() (inject.Values, error)
	// ServiceType of the Gateways' Services; default LoadBalancer, as
	// Istio's. A Gateway's networking.istio.io/service-type wins.
	ServiceType corev1.ServiceType

	mu      sync.Mutex
	applied map[string]appliedState // namespace/name of the Gateway → what was applied
}

type appliedState struct {
	fingerprint string
	at          time.Time
}

// Sync applies what the snapshot's Gateways need and deletes what pilot
// applied for Gateways that no longer need it.
func (d *Deployer) Sync(ctx context.Context, s *model.Snapshot, log *slog.Logger) {
	if s.GatewayAPI == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.applied == nil {
		d.applied = map[string]appliedState{}
	}
	want := map[string]bool{}
	var values inject.Values
	var valuesErr error
	loaded := false
	for _, dep := range s.GatewayAPI.Deployments {
		key := dep.Gateway.Namespace + "/" + dep.Gateway.Name
		want[key] = true
		if !loaded {
			values, valuesErr = d.Values()
			loaded = true
		}
		if valuesErr != nil {
			log.Warn("gateway deployment: no injector values", "gateway", key, "err", valuesErr)
			return
		}
		o := Build(dep, values, d.ServiceType)
		fp := fingerprint(o)
		if st, ok := d.applied[key]; ok && st.fingerprint == fp && time.Since(st.at) < reapply && serviceExists(s, o) {
			continue
		}
		if err := d.apply(ctx, o); err != nil {
			log.Warn("gateway deployment", "gateway", key, "err", err)
			continue
		}
		log.Info("gateway deployment applied", "gateway", key, "deployment", o.Deployment.Name)
		d.applied[key] = appliedState{fingerprint: fp, at: time.Now()}
	}
	for key := range d.applied {
		if want[key] {
			continue
		}
		ns, name := splitKey(key)
		if err := d.remove(ctx, ns, name); err != nil {
			log.Warn("gateway deployment: remove", "gateway", key, "err", err)
			continue
		}
		log.Info("gateway deployment removed", "gateway", key)
		delete(d.applied, key)
	}
}

// Forget drops what was remembered, as a new leader must: an earlier term's
// writes may have been undone since.
func (d *Deployer) Forget() {
	d.mu.Lock()
	d.applied = nil
	d.mu.Unlock()
}

func (d *Deployer) apply(ctx context.Context, o Objects) error {
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
	ns := o.Deployment.Namespace
	data, err := json.Marshal(o.ServiceAccount)
	if err != nil {
		return err
	}
	if _, err := d.Kube.CoreV1().ServiceAccounts(ns).Patch(ctx, o.ServiceAccount.Name, types.ApplyPatchType, data, opts); err != nil {
		return err
	}
	if data, err = json.Marshal(o.Deployment); err != nil {
		return err
	}
	if _, err := d.Kube.AppsV1().Deployments(ns).Patch(ctx, o.Deployment.Name, types.ApplyPatchType, data, opts); err != nil {
		return err
	}
	if data, err = json.Marshal(o.Service); err != nil {
		return err
	}
	_, err = d.Kube.CoreV1().Services(ns).Patch(ctx, o.Service.Name, types.ApplyPatchType, data, opts)
	return err
}

// remove deletes the objects pilot applied for a Gateway (name is the
// Gateway's): those labelled as managed by mesh for that Gateway, whatever
// class they were made for.
func (d *Deployer) remove(ctx context.Context, ns, gateway string) error {
	sel := metav1.ListOptions{LabelSelector: ManagedLabel + "=" + ManagedValue + ",gateway.networking.k8s.io/gateway-name=" + gateway}
	ignore := func(err error) error {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	deps, err := d.Kube.AppsV1().Deployments(ns).List(ctx, sel)
	if err != nil {
		return err
	}
	for _, x := range deps.Items {
		if err := ignore(d.Kube.AppsV1().Deployments(ns).Delete(ctx, x.Name, metav1.DeleteOptions{})); err != nil {
			return err
		}
	}
	svcs, err := d.Kube.CoreV1().Services(ns).List(ctx, sel)
	if err != nil {
		return err
	}
	for _, x := range svcs.Items {
		if err := ignore(d.Kube.CoreV1().Services(ns).Delete(ctx, x.Name, metav1.DeleteOptions{})); err != nil {
			return err
		}
	}
	sas, err := d.Kube.CoreV1().ServiceAccounts(ns).List(ctx, sel)
	if err != nil {
		return err
	}
	for _, x := range sas.Items {
		if err := ignore(d.Kube.CoreV1().ServiceAccounts(ns).Delete(ctx, x.Name, metav1.DeleteOptions{})); err != nil {
			return err
		}
	}
	return nil
}

func serviceExists(s *model.Snapshot, o Objects) bool {
	return s.ServiceByHost(o.Service.Name+"."+o.Service.Namespace+".svc."+model.DomainSuffix) != nil
}

func fingerprint(o Objects) string {
	data, _ := json.Marshal(o)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func splitKey(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}
