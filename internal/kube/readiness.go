package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
)

// Readiness is whether one object is ready and, when not, why.
type Readiness struct {
	Ref    Ref    `json:"object"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// NotReadyError lists the objects that did not become ready in time, each with its reason.
type NotReadyError struct {
	Timeout time.Duration
	Items   []Readiness
}

func (e *NotReadyError) Error() string {
	parts := make([]string, 0, len(e.Items))
	for _, it := range e.Items {
		parts = append(parts, fmt.Sprintf("%s: %s", it.Ref, it.Reason))
	}
	return fmt.Sprintf("not ready after %s: %s", e.Timeout, strings.Join(parts, "; "))
}

// NeedsWait reports whether mesh waits for objects of this kind before going on.
func NeedsWait(ref Ref) bool {
	switch ref.Group + "/" + ref.Kind {
	case "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet",
		"apiextensions.k8s.io/CustomResourceDefinition", "/Namespace":
		return true
	}
	return false
}

// WaitReady polls the objects until every one is ready or timeout passes; on
// timeout it returns a *NotReadyError naming each laggard and why it lags.
func (c *Client) WaitReady(ctx context.Context, refs []Ref, timeout time.Duration) error {
	var pending []Ref
	for _, r := range refs {
		if NeedsWait(r) {
			pending = append(pending, r)
		}
	}
	deadline := time.Now().Add(timeout)
	interval := 100 * time.Millisecond
	for {
		var still []Ref
		for _, r := range pending {
			st, err := c.Check(ctx, r, false)
			if err != nil {
				return err
			}
			if !st.Ready {
				still = append(still, r)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		interval = min(interval*2, time.Second)
	}
	nre := &NotReadyError{Timeout: timeout}
	for _, r := range pending {
		st, err := c.Check(ctx, r, true)
		if err != nil {
			return err
		}
		if !st.Ready {
			nre.Items = append(nre.Items, st)
		}
	}
	if len(nre.Items) == 0 {
		return nil
	}
	return nre
}

// Check looks at one object once. With explain it also gathers the reason an
// unready object is unready (pod conditions, container states, events).
func (c *Client) Check(ctx context.Context, ref Ref, explain bool) (Readiness, error) {
	st := Readiness{Ref: ref, Ready: true}
	var err error
	switch ref.Group + "/" + ref.Kind {
	case "apps/Deployment":
		err = c.checkDeployment(ctx, &st, explain)
	case "apps/StatefulSet", "apps/DaemonSet":
		err = c.checkWorkload(ctx, &st, explain)
	case "apiextensions.k8s.io/CustomResourceDefinition":
		err = c.checkCRD(ctx, &st)
	case "/Namespace":
		err = c.checkNamespace(ctx, &st)
	}
	if apierrors.IsNotFound(err) {
		return Readiness{Ref: ref, Reason: "does not exist"}, nil
	}
	if err != nil {
		return st, fmt.Errorf("check %s: %w", ref, c.Explain(err))
	}
	return st, nil
}

func (c *Client) checkDeployment(ctx context.Context, st *Readiness, explain bool) error {
	d, err := c.Kube.AppsV1().Deployments(st.Ref.Namespace).Get(ctx, st.Ref.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.ObservedGeneration < d.Generation:
		st.Ready, st.Reason = false, "the deployment controller has not seen the latest spec yet"
	case s.UpdatedReplicas < want:
		st.Ready, st.Reason = false, fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		st.Ready, st.Reason = false, fmt.Sprintf("%d old replicas still terminating", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < want:
		st.Ready, st.Reason = false, fmt.Sprintf("%d of %d replicas available", s.AvailableReplicas, want)
	}
	if st.Ready || !explain {
		return nil
	}
	var why []string
	for _, cond := range s.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Reason == "ProgressDeadlineExceeded" ||
			cond.Type == appsv1.DeploymentReplicaFailure && cond.Status == corev1.ConditionTrue {
			why = append(why, cond.Message)
		}
	}
	why = append(why, c.podReasons(ctx, d.Namespace, d.Spec.Selector)...)
	why = append(why, c.warningEvents(ctx, d.Namespace, d.Name, "Deployment")...)
	if len(why) == 0 {
		rsWhy := c.replicaSetEvents(ctx, d)
		why = append(why, rsWhy...)
	}
	st.Reason = joinWhy(st.Reason, why)
	return nil
}

func (c *Client) checkWorkload(ctx context.Context, st *Readiness, explain bool) error {
	var sel *metav1.LabelSelector
	switch st.Ref.Kind {
	case "StatefulSet":
		s, err := c.Kube.AppsV1().StatefulSets(st.Ref.Namespace).Get(ctx, st.Ref.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		if s.Status.ObservedGeneration < s.Generation || s.Status.ReadyReplicas < want || s.Status.UpdatedReplicas < want {
			st.Ready, st.Reason = false, fmt.Sprintf("%d of %d replicas ready", s.Status.ReadyReplicas, want)
		}
		sel = s.Spec.Selector
	case "DaemonSet":
		s, err := c.Kube.AppsV1().DaemonSets(st.Ref.Namespace).Get(ctx, st.Ref.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Status.ObservedGeneration < s.Generation || s.Status.NumberReady < s.Status.DesiredNumberScheduled {
			st.Ready, st.Reason = false, fmt.Sprintf("%d of %d pods ready", s.Status.NumberReady, s.Status.DesiredNumberScheduled)
		}
		sel = s.Spec.Selector
	}
	if !st.Ready && explain {
		st.Reason = joinWhy(st.Reason, c.podReasons(ctx, st.Ref.Namespace, sel))
	}
	return nil
}

func (c *Client) checkCRD(ctx context.Context, st *Readiness) error {
	u, err := c.Dynamic.Resource(crdResource).Get(ctx, st.Ref.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, raw := range conds {
		cond, _ := raw.(map[string]any)
		if cond["type"] == "Established" && cond["status"] == "True" {
			return nil
		}
		if cond["type"] == "NamesAccepted" && cond["status"] == "False" {
			st.Ready, st.Reason = false, fmt.Sprintf("names not accepted: %v", cond["message"])
			return nil
		}
	}
	st.Ready, st.Reason = false, "not established yet"
	return nil
}

func (c *Client) checkNamespace(ctx context.Context, st *Readiness) error {
	ns, err := c.Kube.CoreV1().Namespaces().Get(ctx, st.Ref.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating {
		st.Ready, st.Reason = false, "is being deleted"
	}
	return nil
}

// ReadyNow judges, from an object already read, whether a CRD is established
// or a namespace active; other objects count as ready.
func ReadyNow(u *unstructured.Unstructured) bool {
	if u == nil {
		return false
	}
	switch u.GroupVersionKind().GroupKind().String() {
	case "CustomResourceDefinition.apiextensions.k8s.io":
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, raw := range conds {
			if c, _ := raw.(map[string]any); c["type"] == "Established" && c["status"] == "True" {
				return true
			}
		}
		return false
	case "Namespace":
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return phase == "Active" && u.GetDeletionTimestamp() == nil
	}
	return true
}

// podReasons says why the pods behind a selector are not ready: scheduling,
// image pulls, crash loops, failing probes.
func (c *Client) podReasons(ctx context.Context, ns string, sel *metav1.LabelSelector) []string {
	if sel == nil {
		return nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil
	}
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return []string{fmt.Sprintf("cannot list pods: %v", err)}
	}
	if len(pods.Items) == 0 {
		return []string{"no pods exist for it"}
	}
	var out []string
	for _, p := range pods.Items {
		if r := PodReason(&p); r != "" {
			out = append(out, fmt.Sprintf("pod %s: %s", p.Name, r))
			for _, e := range c.warningEvents(ctx, ns, p.Name, "Pod") {
				// The scheduler's event repeats the PodScheduled condition word for word.
				if _, msg, _ := strings.Cut(e, ": "); !strings.Contains(r, msg) {
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// PodReason explains in one phrase why a pod is not ready, or returns "" when it is.
func PodReason(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
			msg := fmt.Sprintf("container %s is waiting: %s", cs.Name, w.Reason)
			if w.Message != "" {
				msg += " (" + w.Message + ")"
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				msg += fmt.Sprintf(", last exit code %d (%s)", t.ExitCode, t.Reason)
			}
			return msg
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("container %s exited with code %d (%s)", cs.Name, t.ExitCode, t.Reason)
		}
	}
	var ready bool
	for _, cond := range p.Status.Conditions {
		switch {
		case cond.Type == corev1.PodScheduled && cond.Status != corev1.ConditionTrue:
			return fmt.Sprintf("not scheduled: %s %s", cond.Reason, cond.Message)
		case cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue:
			ready = true
		}
	}
	if ready {
		return ""
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.ContainersReady && cond.Status != corev1.ConditionTrue && cond.Message != "" {
			return fmt.Sprintf("not ready: %s", cond.Message)
		}
	}
	return fmt.Sprintf("not ready (phase %s)", p.Status.Phase)
}

// warningEvents returns the latest distinct Warning events about one object.
func (c *Client) warningEvents(ctx context.Context, ns, name, kind string) []string {
	sel := fields.Set{"involvedObject.name": name, "involvedObject.kind": kind, "type": corev1.EventTypeWarning}.AsSelector()
	evs, err := c.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
	if err != nil || len(evs.Items) == 0 {
		return nil
	}
	sort.Slice(evs.Items, func(i, j int) bool { return eventTime(&evs.Items[i]).After(eventTime(&evs.Items[j])) })
	var out []string
	seen := map[string]bool{}
	for _, e := range evs.Items {
		if seen[e.Reason] || len(out) == 3 {
			continue
		}
		seen[e.Reason] = true
		out = append(out, fmt.Sprintf("event %s on %s/%s: %s", e.Reason, kind, name, strings.TrimSpace(e.Message)))
	}
	return out
}

func (c *Client) replicaSetEvents(ctx context.Context, d *appsv1.Deployment) []string {
	rss, err := c.Kube.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
	if err != nil {
		return nil
	}
	var out []string
	for _, rs := range rss.Items {
		out = append(out, c.warningEvents(ctx, d.Namespace, rs.Name, "ReplicaSet")...)
	}
	return out
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func joinWhy(head string, why []string) string {
	if len(why) == 0 {
		return head
	}
	return head + ": " + strings.Join(why, "; ")
}

// IsNotReady reports whether err is, or wraps, a *NotReadyError.
func IsNotReady(err error) bool { var n *NotReadyError; return errors.As(err, &n) }
