package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Events records a Kubernetes Event on the resource for every step of its
// rollouts (Started, StageAdvanced, Promoted, RolledBack, Aborted, ...),
// as `kubectl describe` and `kubectl events` show them. Steps that say
// something went wrong are Warnings. Only one replica records: the one
// Record says (the status writer's leader), so a step is one Event.
//
// A step this replica takes while it does not record is held, not
// dropped: while no replica holds the lease (a restarted pilot waits for
// its predecessor's to run out) nobody records it, and it would be lost.
// When this replica starts recording (Led), it writes the steps it holds
// that no replica recorded meanwhile; one the leader of the time
// recorded (its own copy of the same step) is not written twice. What a
// follower only echoes of the leader's steps (Event.Echo) is never held.
type Events struct {
	Kube kubernetes.Interface
	// Record reports whether this replica records now; nil: always.
	Record func() bool
	Log    *slog.Logger

	once sync.Once
	ch   chan Event
	lead chan struct{}
	held []Event       // steps offered while this replica did not record, oldest first
	seq  atomic.Uint32 // tells apart steps recorded in the same instant
}

// Steps are held at most this long (and this many): a leader that took
// the lease later than that recorded its own, and Kubernetes keeps
// Events for an hour only.
const (
	maxHeldAge = 5 * time.Minute
	maxHeld    = 256
)

// sameStep is how far apart two replicas' records of one step can be
// (each saw the change, or the leader's state, on its own watch).
const sameStep = time.Minute

func (e *Events) init() {
	e.once.Do(func() {
		e.ch = make(chan Event, 256)
		e.lead = make(chan struct{}, 1)
	})
}

// Offer queues a step; it never blocks (a full queue drops the Event,
// which pilot's log and the history still have). Fit for Manager.OnEvent.
func (e *Events) Offer(ev Event) {
	e.init()
	select {
	case e.ch <- ev:
	default:
	}
}

// Led tells Events that this replica has started recording (it took the
// lease): the steps it holds are written, those another replica
// recorded excepted. It never blocks.
func (e *Events) Led() {
	e.init()
	select {
	case e.lead <- struct{}{}:
	default:
	}
}

func (e *Events) records() bool { return e.Record == nil || e.Record() }

func (e *Events) log() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}

// Run writes the queued steps until ctx ends.
func (e *Events) Run(ctx context.Context) error {
	e.init()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.lead:
			if e.records() {
				e.flush(ctx)
			}
		case ev := <-e.ch:
			if !e.records() {
				if !ev.Echo {
					e.hold(ev)
				}
				continue
			}
			e.flush(ctx) // what was held first, so the Events keep the steps' order
			if err := e.write(ctx, ev); err != nil && ctx.Err() == nil {
				e.log().Warn("record rollout event", "resource", ev.ID, "step", ev.Reason, "err", err)
			}
		}
	}
}

func (e *Events) hold(ev Event) {
	keep := e.held[:0]
	for _, h := range e.held {
		if ev.Time.Sub(h.Time) <= maxHeldAge {
			keep = append(keep, h)
		}
	}
	e.held = append(keep, ev)
	if len(e.held) > maxHeld {
		e.held = e.held[len(e.held)-maxHeld:]
	}
}

// flush writes the held steps no replica recorded.
func (e *Events) flush(ctx context.Context) {
	if len(e.held) == 0 {
		return
	}
	held := e.held
	e.held = nil
	now := time.Now()
	recorded := map[string][]corev1.Event{} // by resource id: its Events now
	unread := map[string]bool{}             // ids whose Events could not be listed
	for _, ev := range held {
		if now.Sub(ev.Time) > maxHeldAge || unread[ev.ID] {
			continue
		}
		ref, err := ParseRef(ev.ID, "")
		if err != nil {
			continue
		}
		evs, seen := recorded[ev.ID]
		if !seen {
			l, err := e.Kube.CoreV1().Events(ref.Namespace).List(ctx, metav1.ListOptions{FieldSelector: fields.AndSelectors(
				fields.OneTermEqualSelector("involvedObject.kind", ref.Kind.GVK.Kind),
				fields.OneTermEqualSelector("involvedObject.name", ref.Name)).String()})
			if err != nil {
				// Unknown whether the leader of the time recorded them: a
				// step twice is no better than a step missing.
				e.log().Warn("rollout steps taken while this replica did not lead not recorded", "resource", ev.ID, "err", err)
				unread[ev.ID] = true
				continue
			}
			evs = l.Items
			recorded[ev.ID] = evs
		}
		if e.recordedBefore(evs, ev) {
			continue
		}
		if err := e.write(ctx, ev); err != nil && ctx.Err() == nil {
			e.log().Warn("record rollout event", "resource", ev.ID, "step", ev.Reason, "err", err)
		}
	}
}

// recordedBefore reports whether evs has ev's step, recorded by another
// replica from its own copy.
func (e *Events) recordedBefore(evs []corev1.Event, ev Event) bool {
	msg := message(ev)
	for _, k := range evs {
		at := k.LastTimestamp.Time
		if k.Reason == ev.Reason && k.Message == msg && (ev.UID == "" || string(k.InvolvedObject.UID) == ev.UID) &&
			k.Annotations[generationAnnotation] == strconv.FormatInt(ev.Generation, 10) &&
			at.Sub(ev.Time) <= sameStep && ev.Time.Sub(at) <= sameStep {
			return true
		}
	}
	return false
}

// generationAnnotation, on a rollout step's Event, is the generation of
// the resource the step is about.
const generationAnnotation = "mesh.io/rollout-generation"

// warning are the steps recorded as Warnings.
var warning = map[string]bool{"RolledBack": true, "Aborted": true, "Held": true, "Invalid": true}

// message is the Event's message for a step.
func message(ev Event) string {
	msg := ev.Message
	if ev.Stage > 0 {
		msg = fmt.Sprintf("stage %d (%d%%): %s", ev.Stage, ev.Percent, msg)
	}
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	return msg
}

func (e *Events) write(ctx context.Context, ev Event) error {
	ref, err := ParseRef(ev.ID, "")
	if err != nil {
		return err
	}
	typ := corev1.EventTypeNormal
	if warning[ev.Reason] {
		typ = corev1.EventTypeWarning
	}
	msg := message(ev)
	host, _ := os.Hostname()
	at := metav1.NewTime(ev.Time)
	gv := ref.Kind.GVK.GroupVersion()
	_, err = e.Kube.CoreV1().Events(ref.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x%02x", ref.Name, ev.Time.UnixNano(), uint8(e.seq.Add(1))), Namespace: ref.Namespace,
			Annotations: map[string]string{generationAnnotation: strconv.FormatInt(ev.Generation, 10)}},
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
