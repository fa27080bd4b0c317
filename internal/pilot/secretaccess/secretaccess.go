// Package secretaccess keeps pilot allowed to read the Secrets of each
// namespace gateways need them from, and of no other: a RoleBinding of
// the base chart's ClusterRole mesh-pilot-gateway-secrets to pilot's
// service account in each namespace of Snapshot.GatewaySecretNamespaces
// that the install does not grant already, owned by the Gateway API
// objects that put the namespace there (so it is garbage-collected with
// them), and deleted when no gateway needs the namespace any more.
package secretaccess

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

// FieldManager is the server-side apply manager of the RoleBindings.
const FieldManager = "mesh-pilot"

// Label marks the RoleBindings a Binder keeps; its value is the Binder's
// Name, so revisions keep theirs apart.
const Label = "mesh.io/gateway-secrets"

// reapply is how often an unchanged RoleBinding is applied again anyway,
// so one someone deleted comes back.
const reapply = time.Minute

// Binder applies and removes the RoleBindings. It is run by the status
// writer's leader, so one replica writes; every replica reads through
// them (model.Watcher.FollowGatewaySecrets).
type Binder struct {
	Kube kubernetes.Interface
	// Name is the RoleBinding's (mesh-pilot-gateway-secrets-auto, with
	// the revision's suffix after mesh-pilot); ClusterRole the base
	// chart's role it binds (mesh-pilot-gateway-secrets, likewise). The
	// chart's Roles for the install's namespaces have other names: a
	// RoleBinding's roleRef cannot change.
	Name, ClusterRole string
	// ServiceAccount and Namespace are pilot's, the RoleBinding's subject.
	ServiceAccount, Namespace string
	// Granted are the namespaces the install lets pilot read Secrets in
	// already (its Roles): no RoleBinding is made there. "*" among them:
	// pilot reads every namespace's and the Binder does nothing.
	Granted []string

	mu      sync.Mutex
	applied map[string]appliedState // namespace → what was applied there
	swept   bool                    // strays of an earlier term were looked for
}

type appliedState struct {
	fingerprint string
	at          time.Time
}

// Sync makes the RoleBindings the snapshot's gateways need and deletes
// those no longer needed.
func (b *Binder) Sync(ctx context.Context, s *model.Snapshot, log *slog.Logger) {
	if slices.Contains(b.Granted, "*") {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.applied == nil {
		b.applied = map[string]appliedState{}
	}
	want := map[string]bool{}
	for ns, use := range s.GatewaySecretNamespaces() {
		if slices.Contains(b.Granted, ns) {
			continue
		}
		want[ns] = true
		rb := b.Build(ns, use)
		fp := fingerprint(rb)
		if st, ok := b.applied[ns]; ok && st.fingerprint == fp && time.Since(st.at) < reapply {
			continue
		}
		if err := b.apply(ctx, rb); err != nil {
			log.Warn("gateway Secrets: RoleBinding", "namespace", ns, "name", b.Name, "err", err)
			continue
		}
		if _, ok := b.applied[ns]; !ok {
			log.Info("gateway Secrets: RoleBinding applied", "namespace", ns, "name", b.Name)
		}
		b.applied[ns] = appliedState{fingerprint: fp, at: time.Now()}
	}
	if !b.swept {
		// A new term: RoleBindings an earlier one left (pilot was down
		// when their gateways went) are found by label, once.
		list, err := b.Kube.RbacV1().RoleBindings(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: Label + "=" + b.Name})
		if err != nil {
			log.Warn("gateway Secrets: list RoleBindings", "err", err)
		} else {
			for _, rb := range list.Items {
				if _, ok := b.applied[rb.Namespace]; !ok {
					b.applied[rb.Namespace] = appliedState{}
				}
			}
			b.swept = true
		}
	}
	for ns := range b.applied {
		if want[ns] {
			continue
		}
		err := b.Kube.RbacV1().RoleBindings(ns).Delete(ctx, b.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			log.Warn("gateway Secrets: delete RoleBinding", "namespace", ns, "name", b.Name, "err", err)
			continue
		}
		log.Info("gateway Secrets: RoleBinding removed", "namespace", ns, "name", b.Name)
		delete(b.applied, ns)
	}
}

// Forget drops what was remembered, as a new leader must.
func (b *Binder) Forget() {
	b.mu.Lock()
	b.applied, b.swept = nil, false
	b.mu.Unlock()
}

// Build is the RoleBinding of namespace ns: pilot's service account may
// read its Secrets. Its owners are the Gateways and ReferenceGrants there
// that need it; none when only gateway workloads do (pilot deletes it
// when they are gone).
func (b *Binder) Build(ns string, use *model.GatewaySecretUse) *rbacv1.RoleBinding {
	var owners []metav1.OwnerReference
	for _, gw := range use.Gateways {
		owners = append(owners, metav1.OwnerReference{APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID})
	}
	for _, g := range use.Grants {
		owners = append(owners, metav1.OwnerReference{APIVersion: gwv1.GroupVersion.String(), Kind: "ReferenceGrant", Name: g.Name, UID: g.UID})
	}
	if use.Workloads {
		// The gateway workloads keep needing it whatever becomes of
		// those objects: no owner, or the collector would delete it
		// with the last of them.
		owners = nil
	}
	sort.Slice(owners, func(i, j int) bool { return owners[i].Kind+"/"+owners[i].Name < owners[j].Kind+"/"+owners[j].Name })
	return &rbacv1.RoleBinding{
		TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{
			Name: b.Name, Namespace: ns,
			Labels:          map[string]string{Label: b.Name, "app.kubernetes.io/managed-by": "mesh-pilot"},
			OwnerReferences: owners,
		},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.ClusterRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: b.ServiceAccount, Namespace: b.Namespace}},
	}
}

func (b *Binder) apply(ctx context.Context, rb *rbacv1.RoleBinding) error {
	data, err := json.Marshal(rb)
	if err != nil {
		return err
	}
	force := true
	if _, err := b.Kube.RbacV1().RoleBindings(rb.Namespace).Patch(ctx, rb.Name, types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
		return fmt.Errorf("apply RoleBinding %s/%s: %w", rb.Namespace, rb.Name, err)
	}
	return nil
}

func fingerprint(rb *rbacv1.RoleBinding) string {
	data, _ := json.Marshal(rb)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
