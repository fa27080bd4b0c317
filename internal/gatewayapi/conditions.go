package gatewayapi

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// setCondition sets one condition for the given generation. The status
// writer keeps LastTransitionTime of an unchanged condition.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, ok bool, reason, msg string) {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	apimeta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen})
}

func meta(conds []metav1.Condition, typ string) *metav1.Condition {
	return apimeta.FindStatusCondition(conds, typ)
}

// condition is a problem found translating a route: with accepted set, it
// makes the route not Accepted; otherwise it is a ResolvedRefs problem.
type condition struct {
	accepted *bool
	reason   string
	message  string
}
