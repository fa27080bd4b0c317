package runtime

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// TaintKey keeps the scheduler from placing pods on the runtime's node: only
// pods the placement webhook binds there (all images local) run on it.
const TaintKey = "sandbox.mesh.dev/runtime"

const leaseSeconds = 40

// registerNode creates the runtime's node. It carries no kwok annotation, so
// kwok leaves it and its pods alone.
func (r *Runtime) registerNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: r.node,
			Labels: map[string]string{
				"kubernetes.io/hostname": r.node,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "sandbox-runtime",
			},
		},
		Spec: corev1.NodeSpec{
			PodCIDR: r.net.CIDR(), PodCIDRs: []string{r.net.CIDR()},
			Taints: []corev1.Taint{{Key: TaintKey, Value: "true", Effect: corev1.TaintEffectNoSchedule}},
		},
	}
	nodes := r.cs.CoreV1().Nodes()
	if err := nodes.Delete(ctx, r.node, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove old node %s: %w", r.node, err)
	}
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", r.node, err)
	}
	r.nodeObj = created
	return r.heartbeat(ctx)
}

// heartbeat renews the node's Lease and Ready condition, which the node
// lifecycle controller watches.
func (r *Runtime) heartbeat(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	leases := r.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	l, err := leases.Get(ctx, r.node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: r.node, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: r.node, UID: r.nodeObj.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(r.node), LeaseDurationSeconds: ptr.To[int32](leaseSeconds), RenewTime: &now},
		}, metav1.CreateOptions{})
	case err == nil:
		l.Spec.RenewTime = &now
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("node lease: %w", err)
	}
	// The node lifecycle controller writes the node too (taints); retry on its changes.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error { return r.updateNodeStatus(ctx) })
	if err != nil {
		return fmt.Errorf("node %s status: %w", r.node, err)
	}
	return nil
}

func (r *Runtime) updateNodeStatus(ctx context.Context) error {
	node, err := r.cs.CoreV1().Nodes().Get(ctx, r.node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	hb := metav1.NewTime(time.Now())
	if node.Status.Conditions == nil {
		node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			Reason: "SandboxRuntimeReady", Message: "the sandbox runtime runs this node's pods as local processes", LastTransitionTime: hb}}
		node.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"),
			corev1.ResourceMemory: resource.MustParse("16Gi"), corev1.ResourcePods: resource.MustParse("110")}
		node.Status.Allocatable = node.Status.Capacity
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: r.node}}
		node.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: "sandbox-runtime", OperatingSystem: "linux", Architecture: "amd64",
			ContainerRuntimeVersion: "sandbox://local-processes"}
	}
	// The API server sends logs, port-forward and exec for this node's pods here.
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(r.kubeletPort)
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == corev1.NodeReady {
			node.Status.Conditions[i].LastHeartbeatTime = hb
		}
	}
	_, err = r.cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func (r *Runtime) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.heartbeat(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("node heartbeat", "err", err)
			}
		}
	}
}
