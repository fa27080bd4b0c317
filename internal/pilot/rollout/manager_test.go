package rollout

import (
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout/annotation"
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

// Promote and abort requests (the annotations `mesh rollout` writes) move
// the rollout of the generation they name, once, and nothing else; an
// annotation-only edit does not restart the stage's soak.
func TestPromoteAndAbortRequests(t *testing.T) {
	clock := NewFakeClock(time.Unix(0, 0))
	var plan Plan
	m := &Manager{Clock: clock, Push: func(_ *model.Snapshot, _ model.Change, p Plan) map[string]Counts {
		plan = p
		return nil
	}}
	stages := map[string]string{AnnotationStages: "10,50,90,100", AnnotationInterval: "1m"}
	with := func(extra ...string) map[string]string {
		a := map[string]string{}
		for k, v := range stages {
			a[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			a[extra[i]] = extra[i+1]
		}
		return a
	}
	offer := func(subset string, gen int64, ann map[string]string) {
		vs := vsWith(subset, ann)
		vs.Generation = gen
		m.Offer(model.Build(1, model.Input{VirtualServices: []*networkingv1.VirtualService{vs}}), model.Change{})
	}
	status := func() Status { return m.Statuses()[0] }
	offer("a", 1, with())
	offer("b", 2, with())
	if s := status(); s.Phase != Progressing || s.Stage != 1 || s.Generation != 2 {
		t.Fatalf("after the change: %+v, want stage 1 of generation 2", s)
	}
	clock.Advance(40 * time.Second)
	offer("b", 2, with("team", "x")) // an annotation-only edit
	clock.Advance(20 * time.Second)
	if s := status(); s.Stage != 2 {
		t.Fatalf("stage %d a minute after the change, with an annotation edit at 40s: want 2 (the edit must not restart the soak)", s.Stage)
	}

	offer("b", 2, with(AnnotationPromote, "1/2")) // an older generation's request
	if s := status(); s.Stage != 2 {
		t.Errorf("a promote for generation 1 moved generation 2's rollout to stage %d", s.Stage)
	}
	offer("b", 2, with(AnnotationPromote, "2/2"))
	if s := status(); s.Stage != 3 || len(plan.Candidates) != 1 || plan.Candidates[0].Percent != 90 {
		t.Fatalf("promote from stage 2: stage %d, plan %+v; want stage 3 at 90%%", s.Stage, plan.Candidates)
	}
	offer("b", 2, with(AnnotationPromote, "2/2", "team", "y")) // the same request seen again
	if s := status(); s.Stage != 3 {
		t.Errorf("the same promote seen twice moved the rollout to stage %d, want 3", s.Stage)
	}
	offer("b", 2, with(AnnotationPromote, "2/two"))
	h, _ := m.History(status().ID)
	if last := h[len(h)-1]; last.Reason != "Invalid" || !strings.Contains(last.Message, AnnotationPromote) || status().Phase != Progressing {
		t.Errorf("malformed request: last step %+v, phase %s; want Invalid naming the annotation, the rollout going on", last, status().Phase)
	}
	offer("b", 2, with(AnnotationAbort, "2"))
	if s := status(); s.Phase != RolledBack || len(plan.Candidates) != 0 {
		t.Fatalf("abort: %+v with %d candidates, want RolledBack and none", s, len(plan.Candidates))
	}
	h, _ = m.History(status().ID)
	if last := h[len(h)-1]; last.Reason != "Aborted" {
		t.Errorf("abort recorded as %+v", last)
	}

	offer("c", 3, with(AnnotationAbort, "2"))
	if s := status(); s.Phase != Progressing || s.Stage != 1 {
		t.Errorf("a new change after an abort: %+v; want its rollout started at stage 1", s)
	}
	offer("c", 3, with(AnnotationAbort, "2", AnnotationPromote, "3/all"))
	if s := status(); s.Phase != Released || len(plan.Candidates) != 0 {
		t.Errorf("promote all: %+v, want Released", s)
	}
}

// The install API's mesh-wide default stages a resource that carries no
// rollout annotation; a resource's own annotation wins key by key, and
// stages "100" opts it out.
func TestMeshWideDefault(t *testing.T) {
	clock := NewFakeClock(time.Unix(0, 0))
	var plan Plan
	m := &Manager{Clock: clock, Default: annotation.Default{Stages: "50,100", Interval: "1m"},
		Push: func(_ *model.Snapshot, _ model.Change, p Plan) map[string]Counts {
			plan = p
			return nil
		}}
	offer := func(vss ...*networkingv1.VirtualService) {
		m.Offer(model.Build(1, model.Input{VirtualServices: vss}), model.Change{Full: true})
	}
	named := func(name, subset string, ann map[string]string) *networkingv1.VirtualService {
		vs := vsWith(subset, ann)
		vs.Name = name
		return vs
	}
	phase := func(name string) Status {
		for _, s := range m.Statuses() {
			if s.Name == name {
				return s
			}
		}
		return Status{Phase: "untracked"}
	}
	optOut := map[string]string{AnnotationStages: "100"}
	ownStages := map[string]string{AnnotationStages: "25,50,100"}
	offer(named("plain", "a", nil), named("out", "a", optOut), named("own", "a", ownStages))
	offer(named("plain", "b", nil), named("out", "b", optOut), named("own", "b", ownStages))

	if st := phase("plain"); st.Phase != Progressing || st.Stage != 1 || st.Interval != "1m0s" || len(st.Stages) != 2 {
		t.Errorf("unannotated change under the default: %+v, want Progressing at stage 1 of 50,100 every 1m", st)
	}
	if st := phase("own"); st.Phase != Progressing || len(st.Stages) != 3 || st.Interval != "1m0s" {
		t.Errorf("own stages under the default: %+v, want its own 3 stages with the default interval", st)
	}
	if st := phase("out"); st.Phase == Progressing {
		t.Errorf("stages \"100\" under the default: %+v, want released at once", st)
	}
	if len(plan.Candidates) != 2 {
		t.Errorf("%d candidates in flight, want 2 (plain, own)", len(plan.Candidates))
	}
	clock.Advance(time.Minute)
	if st := phase("plain"); st.Phase != Released {
		t.Errorf("after the default interval: %+v, want Released", st)
	}
}
