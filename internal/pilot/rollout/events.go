package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Events records a Kubernetes Event on the resource for every step of its
// rollouts (Started, StageAdvanced, Promoted, RolledBack, Aborted, ...),
// as `kubectl describe` and `kubectl events` show them. Steps that say
// something went wrong are Warnings. Only one replica records: the one
// Record says (the status writer's leader), so a step is one Event.
type Events struct {
	Kube kubernetes.Interface
	// Record reports whether this replica records now; nil: always.
	Record func() bool
	Log    *slog.Logger

	once sync.Once
	ch   chan Event
	seq  atomic.Uint32 // tells apart steps recorded in the same instant
}

func (e *Events) init() { e.once.Do(func() { e.ch = make(chan Event, 256) }) }

// Offer queues a step; it never blocks (a full queue drops the Event,
// which pilot's log and the history still have). Fit for Manager.OnEvent.
func (e *Events) Offer(ev Event) {
	e.init()
	select {
	case e.ch <- ev:
	default:
	}
}

// Run writes the queued steps until ctx ends.
func (e *Events) Run(ctx context.Context) error {
	e.init()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-e.ch:
			if e.Record != nil && !e.Record() {
				continue
			}
			if err := e.write(ctx, ev); err != nil && ctx.Err() == nil {
				log := e.Log
				if log == nil {
					log = slog.Default()
				}
				log.Warn("record rollout event", "resource", ev.ID, "step", ev.Reason, "err", err)
			}
		}
	}
}

// warning are the steps recorded as Warnings.
var warning = map[string]bool{"RolledBack": true, "Aborted": true, "Held": true, "Invalid": true}

func (e *Events) write(ctx context.Context, ev Event) error {
	ref, err := ParseRef(ev.ID, "")
	if err != nil {
		return err
	}
	typ := corev1.EventTypeNormal
	if warning[ev.Reason] {
		typ = corev1.EventTypeWarning
	}
	msg := ev.Message
	if ev.Stage > 0 {
		msg = fmt.Sprintf("stage %d (%d%%): %s", ev.Stage, ev.Percent, msg)
	}
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	host, _ := os.Hostname()
	at := metav1.NewTime(ev.Time)
	gv := ref.Kind.GVK.GroupVersion()
	_, err = e.Kube.CoreV1().Events(ref.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x%02x", ref.Name, ev.Time.UnixNano(), uint8(e.seq.Add(1))), Namespace: ref.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: ref.Kind.GVK.Kind, APIVersion: gv.String(), Namespace: ref.Namespace, Name: ref.Name, UID: types.UID(ev.UID),
		},
		Reason: ev.Reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: "mesh-pilot", Host: host},
		FirstTimestamp: at, LastTimestamp: at, Count: 1,
		ReportingController: "mesh.io/pilot", ReportingInstance: host,
	}, metav1.CreateOptions{})
	return err
}
