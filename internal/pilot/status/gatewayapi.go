package status

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"mesh.dev/mesh/internal/gatewayapi"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// syncGatewayAPI writes the status internal/gatewayapi worked out for the
// snapshot's Gateway API objects: the whole status of mesh's GatewayClasses
// and their Gateways, and on routes the parent entries of mesh's
// controllers, keeping those other controllers wrote. An object whose
// status already says the same is not written.
func (w *Writer) syncGatewayAPI(ctx context.Context, s *model.Snapshot, log *slog.Logger) {
	out := s.GatewayAPI
	if w.GatewayAPI == nil || out == nil {
		return
	}
	now := metav1.Now()
	// A write shows in the snapshot only once the informer has it, so
	// what was written for a generation of an object (its UID: one
	// deleted and made again under the same name starts at generation 1
	// with no status) is remembered, as for Istio's kinds.
	done := func(key string, uid types.UID, gen int64, want any) bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.written[key] == fmt.Sprint(gen, "|", uid, "|", fingerprint(want))
	}
	write := func(key string, uid types.UID, gen int64, want any, err error) {
		switch {
		case err == nil:
			w.remember(key, gen, string(uid)+"|"+fingerprint(want))
		case !apierrors.IsConflict(err) && !apierrors.IsNotFound(err):
			log.Warn("write status", "resource", key, "err", err)
		}
	}
	rollouts := map[string]*rollout.Status{}
	if w.Rollouts != nil {
		for _, st := range w.Rollouts() {
			rollouts[st.ID] = &st
		}
	}
	clients := w.clients()
	for _, k := range model.Kinds {
		if k.Status == nil || k.Status.Istio != nil || !clients.Has(k) {
			continue
		}
		for _, o := range k.Objects(s) {
			key, want, x, ok := gatewayAPIStatus(o, out, rollouts, now)
			if !ok || done(key, o.GetUID(), o.GetGeneration(), want) {
				continue
			}
			err := k.Status.Update(ctx, clients, x)
			if apierrors.IsConflict(err) && clients.Dynamic != nil {
				// The snapshot's object predates a status written since
				// (see sync): work it out again on the object as it is now.
				var fresh metav1.Object
				if fresh, err = reload(ctx, clients.Dynamic, k, o); err == nil {
					if fresh.GetGeneration() != o.GetGeneration() || fresh.GetUID() != o.GetUID() {
						continue // the next snapshot has it
					}
					var again bool
					if _, _, x, again = gatewayAPIStatus(fresh, out, rollouts, now); again {
						err = k.Status.Update(ctx, clients, x)
					}
				}
			}
			write(key, o.GetUID(), o.GetGeneration(), want, err)
		}
	}
}

// gatewayAPIStatus works out the status internal/gatewayapi gives one
// object of a Gateway API kind: x is a copy of it with that status, want
// what was worked out; ok is false when nothing is to be written (the
// status says it already, or the object is not mesh's). An object with a
// rollout (rollouts, by rollout ID) gets the condition RolloutCondition:
// a Gateway among its conditions, a route in each of mesh's parent
// entries (a route's status has no conditions of its own).
func gatewayAPIStatus(o metav1.Object, out *gatewayapi.Output, rollouts map[string]*rollout.Status, now metav1.Time) (key string, want any, x metav1.Object, ok bool) {
	switch o := o.(type) {
	case *gwv1.GatewayClass:
		want, ok := out.Classes[o.Name]
		if !ok {
			return "", nil, nil, false
		}
		want.Conditions = mergeConditions(o.Status.Conditions, want.Conditions, now)
		if equality.Semantic.DeepEqual(o.Status, want) {
			return "", nil, nil, false
		}
		x := o.DeepCopy()
		x.Status = want
		return "GatewayClass/" + o.Name, want, x, true
	case *gwv1.Gateway:
		want, ok := out.GatewayStatus[o.Namespace+"/"+o.Name]
		if !ok {
			return "", nil, nil, false
		}
		key := "Gateway.gateway.networking.k8s.io/" + o.Namespace + "/" + o.Name
		want.Conditions = withRollout(want.Conditions, rollouts[key], o.Generation)
		want.Conditions = mergeConditions(o.Status.Conditions, want.Conditions, now)
		for i := range want.Listeners {
			var old []metav1.Condition
			for _, l := range o.Status.Listeners {
				if l.Name == want.Listeners[i].Name {
					old = l.Conditions
				}
			}
			want.Listeners[i].Conditions = mergeConditions(old, want.Listeners[i].Conditions, now)
		}
		if equality.Semantic.DeepEqual(o.Status, want) {
			return "", nil, nil, false
		}
		x := o.DeepCopy()
		x.Status = want
		return key, want, x, true
	case *gwv1.HTTPRoute:
		key := "HTTPRoute/" + o.Namespace + "/" + o.Name
		mine := parentsWithRollout(out.RouteParents[gatewayapi.RouteKey("HTTPRoute", o.Namespace, o.Name)], rollouts[key], o.Generation)
		parents, changed := routeParents(o.Status.Parents, mine, now)
		x := o.DeepCopy()
		x.Status.Parents = parents
		return key, parents, x, changed
	case *gwv1.GRPCRoute:
		key := "GRPCRoute/" + o.Namespace + "/" + o.Name
		mine := parentsWithRollout(out.RouteParents[gatewayapi.RouteKey("GRPCRoute", o.Namespace, o.Name)], rollouts[key], o.Generation)
		parents, changed := routeParents(o.Status.Parents, mine, now)
		x := o.DeepCopy()
		x.Status.Parents = parents
		return key, parents, x, changed
	}
	// A row of model.Kinds with a Gateway API status column and no case
	// here: TestEveryStatusKindIsWritten fails for it.
	return "", nil, nil, false
}

// withRollout returns conds (not modified) with the rollout condition of
// st added, when the object has a rollout.
func withRollout(conds []metav1.Condition, st *rollout.Status, gen int64) []metav1.Condition {
	r := rolloutReport(st)
	if r.text == "" {
		return conds
	}
	status := metav1.ConditionFalse
	if r.status == "True" {
		status = metav1.ConditionTrue
	}
	out := append([]metav1.Condition(nil), conds...)
	return append(out, metav1.Condition{Type: RolloutCondition, Status: status, Reason: r.reason, Message: r.text, ObservedGeneration: gen})
}

// parentsWithRollout returns mesh's parent entries of a route (not
// modified) with the rollout condition of st in each.
func parentsWithRollout(parents []gwv1.RouteParentStatus, st *rollout.Status, gen int64) []gwv1.RouteParentStatus {
	if st == nil {
		return parents
	}
	out := make([]gwv1.RouteParentStatus, len(parents))
	for i, p := range parents {
		p.Conditions = withRollout(p.Conditions, st, gen)
		out[i] = p
	}
	return out
}

// routeParents replaces mesh's entries in a route's parent statuses with
// want, keeping other controllers' entries, and says whether that changes
// anything.
func routeParents(have, want []gwv1.RouteParentStatus, now metav1.Time) ([]gwv1.RouteParentStatus, bool) {
	var out []gwv1.RouteParentStatus
	for _, p := range have {
		if !gatewayapi.Ours(p.ControllerName) {
			out = append(out, p)
		}
	}
	for _, p := range want {
		var old []metav1.Condition
		for _, h := range have {
			if h.ControllerName == p.ControllerName && equality.Semantic.DeepEqual(h.ParentRef, p.ParentRef) {
				old = h.Conditions
			}
		}
		p.Conditions = mergeConditions(old, p.Conditions, now)
		out = append(out, p)
	}
	if out == nil {
		out = []gwv1.RouteParentStatus{}
	}
	if have == nil {
		have = []gwv1.RouteParentStatus{}
	}
	return out, !equality.Semantic.DeepEqual(have, out)
}

// fingerprint is a status without its transition times, which a rewrite
// of the same status changes.
func fingerprint(v any) string {
	b, _ := json.Marshal(v)
	return string(timeField.ReplaceAll(b, nil))
}

var timeField = regexp.MustCompile(`"lastTransitionTime":"[^"]*",?`)

// mergeConditions gives the wanted conditions their transition times: an
// unchanged status keeps the time it last changed at, a changed one is
// now.
func mergeConditions(have, want []metav1.Condition, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, len(want))
	for i, c := range want {
		c.LastTransitionTime = now
		for _, h := range have {
			if h.Type == c.Type && h.Status == c.Status && !h.LastTransitionTime.IsZero() {
				c.LastTransitionTime = h.LastTransitionTime
			}
		}
		out[i] = c
	}
	return out
}
