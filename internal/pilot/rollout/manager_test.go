package rollout

import (
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

func vsWith(subset string, ann map[string]string) *networkingv1.VirtualService {
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default", Annotations: ann}}
	vs.Spec.Hosts = []string{"reviews"}
	vs.Spec.ExportTo = []string{subset} // any spec difference will do
	return vs
}

// A change whose rollout annotations are wrong is held: the version served
// before stays the released one, and status says why; fixing the
// annotation starts the rollout; a deletion goes out at once.
func TestBadAnnotationHoldsTheChange(t *testing.T) {
	var base *model.Snapshot
	var plan Plan
	m := &Manager{Clock: NewFakeClock(time.Unix(0, 0)), Push: func(b *model.Snapshot, _ model.Change, p Plan) map[string]Counts {
		base, plan = b, p
		return nil
	}}
	good := map[string]string{AnnotationStages: "50,100", AnnotationInterval: "1m"}
	offer := func(vs *networkingv1.VirtualService) {
		in := model.Input{}
		if vs != nil {
			in.VirtualServices = []*networkingv1.VirtualService{vs}
		}
		m.Offer(model.Build(1, in), model.Change{Full: true})
	}
	served := func() string {
		if len(base.VirtualServices) == 0 {
			return "none"
		}
		return base.VirtualServices[0].Spec.ExportTo[0]
	}
	offer(vsWith("a", good))
	offer(vsWith("b", map[string]string{AnnotationStages: "50,90", AnnotationInterval: "1m"}))
	st := m.Statuses()
	if len(st) != 1 || st[0].Phase != Held || !strings.Contains(st[0].Reason, "last stage must be 100") {
		t.Fatalf("bad stages: %+v, want Held naming the problem", st)
	}
	if served() != "a" || len(plan.Candidates) != 0 {
		t.Errorf("held change: served %s with %d candidates, want a and none", served(), len(plan.Candidates))
	}
	offer(vsWith("b", good))
	if st := m.Statuses(); st[0].Phase != Progressing || len(plan.Candidates) != 1 || served() != "a" {
		t.Errorf("fixed annotation: %s, %d candidates, served %s; want Progressing with the candidate, a released", st[0].Phase, len(plan.Candidates), served())
	}
	offer(nil)
	if served() != "none" || len(plan.Candidates) != 0 || len(m.Statuses()) != 0 {
		t.Errorf("deleted mid-rollout: served %s, %d candidates; want gone everywhere at once", served(), len(plan.Candidates))
	}
}
