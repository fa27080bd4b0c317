package gatewayapi

import (
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/enforced"
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

// notEnforced sets enforced.ConditionType False on an object that sets
// fields the mesh does not carry out, naming each, as pilot does on the
// Istio kinds; an object without any gets no such condition.
func notEnforced(conds *[]metav1.Condition, gen int64, findings []enforced.Finding) {
	if len(findings) == 0 {
		return
	}
	parts := make([]string, len(findings))
	for i, f := range findings {
		parts[i] = f.String()
	}
	msg := "not carried out: " + strings.Join(parts, "; ")
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	setCondition(conds, gen, enforced.ConditionType, false, "NotEnforced", msg)
}

// maxMessage is the API server's limit on a condition's message.
const maxMessage = 32768

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
