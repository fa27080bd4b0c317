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
)

// syncGatewayAPI writes the status internal/gatewayapi worked out for the
// snapshot's Gateway API objects: the whole status of mesh's GatewayClasses
// and their Gateways, and on routes the parent entries of mesh's
// controllers, keeping those other controllers wrote. An object whose
// status already says the same is not written.
func (w *Writer) syncGatewayAPI(ctx context.Context, s *model.Snapshot, log *slog.Logger) {
	c, out := w.GatewayAPI, s.GatewayAPI
	if c == nil || out == nil {
		return
	}
	opts := metav1.UpdateOptions{FieldManager: "mesh-pilot"}
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
	for _, gc := range s.GatewayClasses {
		want, ok := out.Classes[gc.Name]
		if !ok {
			continue
		}
		want.Conditions = mergeConditions(gc.Status.Conditions, want.Conditions, now)
		key := "GatewayClass/" + gc.Name
		if equality.Semantic.DeepEqual(gc.Status, want) || done(key, gc.UID, gc.Generation, want) {
			continue
		}
		x := gc.DeepCopy()
		x.Status = want
		_, err := c.GatewayV1().GatewayClasses().UpdateStatus(ctx, x, opts)
		write(key, gc.UID, gc.Generation, want, err)
	}
	for _, gw := range s.KubeGateways {
		want, ok := out.GatewayStatus[gw.Namespace+"/"+gw.Name]
		if !ok {
			continue
		}
		want.Conditions = mergeConditions(gw.Status.Conditions, want.Conditions, now)
		for i := range want.Listeners {
			var old []metav1.Condition
			for _, l := range gw.Status.Listeners {
				if l.Name == want.Listeners[i].Name {
					old = l.Conditions
				}
			}
			want.Listeners[i].Conditions = mergeConditions(old, want.Listeners[i].Conditions, now)
		}
		key := "Gateway.gateway.networking.k8s.io/" + gw.Namespace + "/" + gw.Name
		if equality.Semantic.DeepEqual(gw.Status, want) || done(key, gw.UID, gw.Generation, want) {
			continue
		}
		x := gw.DeepCopy()
		x.Status = want
		_, err := c.GatewayV1().Gateways(gw.Namespace).UpdateStatus(ctx, x, opts)
		write(key, gw.UID, gw.Generation, want, err)
	}
	for _, r := range s.HTTPRoutes {
		parents, changed := routeParents(r.Status.Parents, out.RouteParents[gatewayapi.RouteKey("HTTPRoute", r.Namespace, r.Name)], now)
		key := "HTTPRoute/" + r.Namespace + "/" + r.Name
		if !changed || done(key, r.UID, r.Generation, parents) {
			continue
		}
		x := r.DeepCopy()
		x.Status.Parents = parents
		_, err := c.GatewayV1().HTTPRoutes(r.Namespace).UpdateStatus(ctx, x, opts)
		write(key, r.UID, r.Generation, parents, err)
	}
	for _, r := range s.GRPCRoutes {
		parents, changed := routeParents(r.Status.Parents, out.RouteParents[gatewayapi.RouteKey("GRPCRoute", r.Namespace, r.Name)], now)
		key := "GRPCRoute/" + r.Namespace + "/" + r.Name
		if !changed || done(key, r.UID, r.Generation, parents) {
			continue
		}
		x := r.DeepCopy()
		x.Status.Parents = parents
		_, err := c.GatewayV1().GRPCRoutes(r.Namespace).UpdateStatus(ctx, x, opts)
		write(key, r.UID, r.Generation, parents, err)
	}
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
