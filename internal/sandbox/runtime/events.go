package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// eventRepeat is how long the same event on the same object is counted on
// the Event already written instead of writing a new one, as the kubelet's
// event correlator does, so a probe failing every second is one Event with
// a growing count rather than hundreds.
const eventRepeat = 10 * time.Minute

// recordedEvent is the last Event written for one (object, reason, message).
type recordedEvent struct {
	name  string
	first time.Time
	count int32
}

// event records a Warning or Normal Event about the worker's pod with the
// runtime as its source, as the kubelet reports probe failures and
// restarts. Failing to write it is logged, never fatal: Events are for the
// people reading `kubectl describe`, not for the pod's life.
func (w *podWorker) event(ctx context.Context, typ, reason, message string) {
	now := time.Now()
	key := reason + "\x00" + message
	w.mu.Lock()
	if w.events == nil {
		w.events = map[string]*recordedEvent{}
	}
	prev := w.events[key]
	w.mu.Unlock()
	p := w.pod
	events := w.rt.cs.CoreV1().Events(p.Namespace)
	if prev != nil && now.Sub(prev.first) < eventRepeat {
		patch, _ := json.Marshal(map[string]any{"count": prev.count + 1, "lastTimestamp": metav1.NewTime(now)})
		_, err := events.Patch(ctx, prev.name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			w.mu.Lock()
			prev.count++
			w.mu.Unlock()
			return
		}
		w.rt.log.Debug("count event", "pod", w.key(), "reason", reason, "err", err)
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", p.Name, now.UnixNano()), Namespace: p.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name,
			UID: p.UID, ResourceVersion: p.ResourceVersion},
		Reason: reason, Message: message, Type: typ, Count: 1,
		Source:         corev1.EventSource{Component: "kubelet", Host: w.rt.node},
		FirstTimestamp: metav1.NewTime(now), LastTimestamp: metav1.NewTime(now),
		ReportingController: "kubelet", ReportingInstance: w.rt.node,
	}
	if _, err := events.Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		w.rt.log.Debug("write event", "pod", w.key(), "reason", reason, "err", err)
		return
	}
	w.mu.Lock()
	w.events[key] = &recordedEvent{name: ev.Name, first: now, count: 1}
	w.mu.Unlock()
}
