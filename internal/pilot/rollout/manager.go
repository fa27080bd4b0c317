package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout/annotation"
)

// Phase is where a resource's latest change stands.
type Phase string

// The phases. Only Progressing serves the applied version to some proxies
// and the released one to the rest; RolledBack and Held serve the
// released version to all, Released the applied one to all.
const (
	Released    Phase = "Released"    // the applied version is served everywhere
	Progressing Phase = "Progressing" // the applied version is the candidate of a stage
	RolledBack  Phase = "RolledBack"  // the candidate was rejected; the released version is served everywhere
	Held        Phase = "Held"        // the rollout annotations are wrong; the change waits until they are fixed
)

// Event is one step of a resource's rollouts, for its history, status and
// Kubernetes Events.
type Event struct {
	Time     time.Time `json:"time"`
	ID       string    `json:"resource"`
	Revision uint64    `json:"revision"`
	Reason   string    `json:"reason"`          // Started, StageAdvanced, Promoted, RolledBack, Aborted, Held, Superseded, Released, Invalid, Deleted
	Stage    int       `json:"stage,omitempty"` // 1-based stage, 0 when none
	Percent  int       `json:"percent,omitempty"`
	Message  string    `json:"message"`
	// UID is the resource's, for the Kubernetes Event about it.
	UID string `json:"-"`
	// Generation is the resource's metadata.generation the step is about
	// (0: unknown), which tells apart two replicas' records of one step
	// from two steps alike.
	Generation int64 `json:"-"`
	// Echo is set on a step a follower takes because the leader took it
	// (its Event is the leader's to record).
	Echo bool `json:"-"`
}

// Status is one resource's rollout state as `mesh rollout status` shows it.
type Status struct {
	ID        string `json:"resource"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Phase     Phase  `json:"phase"`
	Revision  uint64 `json:"revision"`
	// Generation is the metadata.generation of the version applied (the
	// candidate while Progressing), which promote and abort requests name.
	Generation int64 `json:"generation"`
	Stage      int   `json:"stage,omitempty"` // 1-based, 0 when not progressing
	Stages     []int `json:"stages,omitempty"`
	// Interval is the soak of each stage, as a Go duration ("1m0s").
	Interval string `json:"interval,omitempty"`
	// Since is when the current stage (or phase) began; NextStep when the
	// stage's soak ends (nil when none is pending).
	Since    time.Time  `json:"since"`
	NextStep *time.Time `json:"nextStep,omitempty"`
	Affected int        `json:"affected,omitempty"` // proxies the candidate affects, at the last push
	Staged   []string   `json:"staged,omitempty"`   // proxies given the candidate, at the last push
	Reason   string     `json:"reason,omitempty"`   // why the phase is what it is (rejections, annotation errors)
	// The health gates asked for (nil: none), and the current stage's
	// figures at its last check.
	Max5xxRatio        *float64 `json:"max5xxRatio,omitempty"`
	MaxLatencyIncrease *float64 `json:"maxLatencyIncrease,omitempty"`
	Health             *Health  `json:"health,omitempty"`
}

// Manager decides, for every resource of a config kind carrying the
// rollout annotations, which version is released and which is the
// candidate of which stage, and hands each snapshot to Push as the
// released world plus a plan of candidates. Without annotated resources
// Push gets the watcher's snapshot itself and an empty plan.
type Manager struct {
	Clock Clock        // nil: the wall clock
	Log   *slog.Logger // nil: slog.Default()
	// Push serves base to every proxy and each candidate to the proxies
	// its stage gives it, and returns what that made of each candidate.
	// Calls are serialised.
	Push func(base *model.Snapshot, ch model.Change, plan Plan) map[string]Counts
	// OnEvent, when set, is told of every step (called with the manager's
	// lock held: it must not call back).
	OnEvent func(Event)
	// Health reads the affected proxies' request metrics for the health
	// gates; nil: gates are not measured (status says so).
	Health Sampler
	// Store, when set, keeps the rollouts in flight in the cluster: read
	// at pilot's start to resume them, offered the state at every step.
	Store interface {
		Load(ctx context.Context) (map[string]Saved, error)
		Offer(map[string]Saved)
	}
	// CheckEvery is how often a gated stage's health is read (default a
	// sixth of the interval, from 1s to 10s).
	CheckEvery time.Duration
	// Leads reports whether this replica steps the rollouts (it holds the
	// lease); nil: it always does. A replica that does not lead follows
	// the state the leader keeps (Follow) and hands its proxies'
	// rejections to Forward; its own soak timers, health checks and
	// promote/abort requests step nothing (see leader.go).
	Leads func() bool
	// Forward, when set, hands the leader a rejection seen by this
	// replica while it does not lead (never blocks).
	Forward func(Rejection)
	// Default is the mesh-wide default of the rollout annotations (the
	// install API's values.pilot.rollout): each resource is read with it
	// under its own annotations. The zero Default stages nothing.
	Default annotation.Default

	mu        sync.Mutex
	applied   *model.Snapshot
	resources map[string]*resource
	base      *model.Snapshot
	// stepped is set when a request on a resource moved its rollout
	// during Offer, which then pushes to every proxy.
	stepped bool
	saved   map[string]Saved // what the store held at the start, until used
	// leader is the state the leader kept, as last read while following.
	leader map[string]Saved
	// echo is set while the leader's state is laid on this replica's
	// (follow): the steps recorded then are the leader's.
	echo bool
}

type resource struct {
	id              string
	kind            *model.Kind
	namespace, name string
	applied         metav1.Object // latest version as applied
	released        metav1.Object // the version served to all but the staged; nil: none
	spec            *Spec
	phase           Phase
	revision        uint64
	stage           int // index into spec.Stages while Progressing
	since, next     time.Time
	timer           Timer
	reason          string
	badRequest      string // the last malformed promote/abort request recorded
	counts          Counts
	check           Timer             // the next health check of a gated stage
	zero            map[string]Sample // each proxy's counters when the stage's measuring began
	health          *Health           // the stage's figures at its last check
	history         []Event
}

// maxHistory bounds the events kept per resource.
const maxHistory = 50

func (m *Manager) clock() Clock {
	if m.Clock == nil {
		return RealClock{}
	}
	return m.Clock
}

func (m *Manager) leads() bool { return m.Leads == nil || m.Leads() }

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.Default()
	}
	return m.Log
}

// ID names a resource of a kind: Kind/namespace/name, the kind as
// analyze names it (the Gateway API's Gateway qualified by its group).
func ID(k *model.Kind, ns, name string) string { return kindName(k) + "/" + ns + "/" + name }

func kindName(k *model.Kind) string {
	if k.AnalyzerKind != "" {
		return k.AnalyzerKind
	}
	return k.GVK.Kind
}

// Offer takes a new snapshot from the watcher and pushes it, with the
// released versions of staged resources in place of the applied ones.
func (m *Manager) Offer(snap *model.Snapshot, ch model.Change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.resources == nil {
		m.resources = map[string]*resource{}
	}
	first := m.applied == nil
	if first && m.Store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		saved, err := m.Store.Load(ctx)
		cancel()
		if err != nil {
			m.log().Warn("rollouts in flight not resumed", "err", err)
		}
		m.saved = saved
	}
	prev := m.applied
	m.applied = snap
	in := snap.Input()
	seen := map[string]bool{}
	for _, k := range model.Kinds {
		if !k.CRD {
			continue // only config resources are staged; see docs/rollout.md
		}
		for _, o := range k.List(&in) {
			id := ID(k, o.GetNamespace(), o.GetName())
			seen[id] = true
			m.observe(k, id, o, prev, first)
		}
	}
	for id, r := range m.resources {
		if !seen[id] {
			// A deletion is not staged: the resource goes everywhere at once.
			m.stop(r)
			delete(m.resources, id) // before the record, so the kept state has it no more
			m.record(r, "Deleted", "deleted; a deletion is not staged and reaches every proxy at once")
		}
	}
	if !m.leads() && m.leader != nil && m.follow(m.leader) {
		m.stepped = true
	}
	if m.stepped {
		m.stepped = false
		ch = model.Change{Full: true}
	}
	m.push(ch)
}

// observe folds one object of the new snapshot into its resource's state.
func (m *Manager) observe(k *model.Kind, id string, o metav1.Object, prev *model.Snapshot, first bool) {
	spec, err := Parse(m.Default.Under(o.GetAnnotations()))
	r := m.resources[id]
	if r == nil {
		if err == nil && !spec.Staged() {
			return // not staged: served as applied, nothing to keep
		}
		r = &resource{id: id, kind: k, namespace: o.GetNamespace(), name: o.GetName(), phase: Released}
		m.resources[id] = r
		var before metav1.Object
		if prev != nil {
			pin := prev.Input()
			for _, p := range k.List(&pin) {
				if p.GetNamespace() == r.namespace && p.GetName() == r.name {
					before = p
				}
			}
		}
		if first && err == nil && spec.Staged() && m.resume(r, o, spec) {
			return
		}
		if first || sameSpec(before, o) {
			// Nothing earlier to stage against: at pilot's start the
			// applied version is taken as released (docs/rollout.md).
			r.applied, r.released, r.spec = o, o, spec
			if err != nil {
				r.reason = err.Error()
				m.record(r, "Invalid", err.Error()+"; the version already served stays served")
			}
			return
		}
		r.released, r.applied = before, before
	}
	if r.applied == o {
		return
	}
	candidate := r.applied
	r.applied = o
	switch {
	case err != nil:
		m.stop(r)
		r.phase, r.reason, r.spec = Held, err.Error(), nil
		r.since, r.next = m.clock().Now(), time.Time{}
		m.record(r, "Held", err.Error()+"; the change is not served until the annotation is fixed")
	case !spec.Staged():
		m.stop(r)
		r.released, r.spec, r.phase, r.reason = o, spec, Released, ""
		r.since, r.next = m.clock().Now(), time.Time{}
		m.record(r, "Released", "released to every proxy at once: the resource asks for no stages")
	case sameSpec(r.released, o):
		// Back to (or still at) the released spec: nothing to stage.
		wasRolling := r.phase == Progressing
		m.stop(r)
		r.released, r.spec, r.phase, r.reason = o, spec, Released, ""
		if wasRolling {
			m.record(r, "Superseded", "the change was reverted to the released version")
		}
	case r.phase == RolledBack && sameSpec(candidate, o):
		// A rejected candidate is not retried by a metadata edit (a
		// label a controller adds); a new spec starts a new rollout.
		r.spec = spec
	case r.phase == Progressing && sameSpec(candidate, o):
		// Only the metadata changed (stages, interval, a promote or abort
		// request): the rollout goes on under the new annotations, its
		// stage soaked for as long as it already has.
		r.spec = spec
		if r.stage >= len(spec.Stages) || spec.Stages[r.stage] == 100 {
			r.stage = len(spec.Stages) - 1
		}
		if r.stage == len(spec.Stages)-1 {
			m.promote(r, "the new stages end at the current one")
			break
		}
		m.rearm(r)
		if m.leads() {
			m.requests(r, o) // a follower learns their outcome from the leader
		}
	default:
		if r.phase == Progressing {
			m.record(r, "Superseded", "a newer change replaces the candidate; it starts again at stage 1")
		}
		m.stop(r)
		r.spec, r.phase, r.reason = spec, Progressing, ""
		r.revision++
		r.stage = 0
		m.schedule(r)
		m.record(r, "Started", fmt.Sprintf("stage 1 of %d: %d%% of the affected proxies get the change for %s", len(spec.Stages), spec.Stages[0], spec.Interval))
	}
}

// schedule starts the soak of r's current stage.
func (m *Manager) schedule(r *resource) {
	if r.timer != nil {
		r.timer.Stop()
	}
	id, rev, stage := r.id, r.revision, r.stage
	r.since = m.clock().Now()
	r.next = r.since.Add(r.spec.Interval)
	r.timer = m.clock().AfterFunc(r.spec.Interval, func() { m.soaked(id, rev, stage) })
	// A stage is measured from its start: the first reading of the
	// proxies' counters is the zero its figures count from.
	r.zero, r.health = nil, nil
	if r.check != nil {
		r.check.Stop()
		r.check = nil
	}
	m.armCheck(r, 0)
}

// armCheck schedules a health check of r's current stage after d, when
// its spec has gates and pilot can measure them.
func (m *Manager) armCheck(r *resource, d time.Duration) {
	if !r.spec.Gated() || m.Health == nil {
		return
	}
	id, rev, stage := r.id, r.revision, r.stage
	r.check = m.clock().AfterFunc(d, func() { m.checkHealth(id, rev, stage, false) })
}

func (m *Manager) checkEvery(r *resource) time.Duration {
	if m.CheckEvery > 0 {
		return m.CheckEvery
	}
	d := r.spec.Interval / 6
	return min(max(d, time.Second), 10*time.Second)
}

// current reports whether r is still at the rollout and stage a timer
// was armed for.
func current(r *resource, rev uint64, stage int) bool {
	return r != nil && r.phase == Progressing && r.revision == rev && r.stage == stage
}

// checkHealth reads the affected proxies' metrics and judges the stage by
// its gates: a failing gate rolls the candidate back; at the end of the
// soak (final) a passing stage moves on. The proxies are read without the
// lock held.
func (m *Manager) checkHealth(id string, rev uint64, stage int, final bool) {
	m.mu.Lock()
	r := m.resources[id]
	if !current(r, rev, stage) || !m.leads() {
		m.mu.Unlock()
		return
	}
	members := append([]string(nil), r.counts.Members...)
	staged := map[string]bool{}
	for _, s := range r.counts.Staged {
		staged[s] = true
	}
	sc := scopeOf(r.applied, r.namespace)
	sample := m.Health
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	samples := sample(ctx, members, sc)
	cancel()

	m.mu.Lock()
	defer m.mu.Unlock()
	r = m.resources[id]
	if !current(r, rev, stage) || !m.leads() {
		return
	}
	if r.zero == nil {
		r.zero = map[string]Sample{}
	}
	var cand, rel []string
	for _, p := range members {
		if s, ok := samples[p]; ok {
			if _, seen := r.zero[p]; !seen {
				r.zero[p] = s // first read this stage: counts from here
			}
		}
		if staged[p] {
			cand = append(cand, p)
		} else {
			rel = append(rel, p)
		}
	}
	h := &Health{CheckedAt: m.clock().Now()}
	var cs, rs Sample
	h.Candidate, cs = group(samples, r.zero, cand)
	h.Released, rs = group(samples, r.zero, rel)
	r.health = h
	if why := judge(r.spec, h, cs, rs); why != "" {
		m.rollBack(r, "RolledBack", fmt.Sprintf("health gate failed at stage %d: %s [%s]", r.stage+1, why, h))
		m.push(model.Change{Full: true})
		return
	}
	if final {
		note := ""
		if cs.Requests < MinRequests {
			note = fmt.Sprintf("; too little traffic to judge (%.0f requests on the staged proxies, %d needed)", cs.Requests, MinRequests)
		}
		m.advance(r, fmt.Sprintf("the stage soaked for %s and passed its health gates%s [%s]", r.spec.Interval, note, h))
		m.push(model.Change{Full: true})
		return
	}
	m.armCheck(r, m.checkEvery(r))
}

// rearm re-arms the soak of r's current stage after its interval may
// have changed, counting the time the stage has already soaked.
func (m *Manager) rearm(r *resource) {
	if r.timer != nil {
		r.timer.Stop()
	}
	id, rev, stage := r.id, r.revision, r.stage
	r.next = r.since.Add(r.spec.Interval)
	left := r.next.Sub(m.clock().Now())
	if left < 0 {
		left = 0
	}
	r.timer = m.clock().AfterFunc(left, func() { m.soaked(id, rev, stage) })
	if r.check == nil {
		m.armCheck(r, 0) // gates added by the edit
	}
}

// resume takes up, at pilot's start, the rollout the store kept for the
// resource, when it is of the generation applied now.
func (m *Manager) resume(r *resource, o metav1.Object, spec *Spec) bool {
	sv, ok := m.saved[r.id]
	if !ok || sv.Phase == Released || sv.Generation != o.GetGeneration() || sv.Stage >= len(spec.Stages)-1 {
		return false
	}
	released, ok := decodeLike(sv.Released, o)
	if !ok {
		return false
	}
	r.applied, r.released, r.spec = o, released, spec
	r.phase, r.stage, r.since, r.revision, r.reason = sv.Phase, sv.Stage, sv.Since, sv.Revision, sv.Reason
	if r.phase == Progressing {
		m.rearm(r)
		m.armCheck(r, 0)
		m.record(r, "Resumed", fmt.Sprintf("pilot restarted: the rollout goes on at stage %d of %d, soaked since %s", r.stage+1, len(spec.Stages), r.since.UTC().Format(time.RFC3339)))
	} else {
		m.record(r, "Resumed", "pilot restarted: the candidate stays rolled back ("+r.reason+")")
	}
	return true
}

// requests carries out the promote and abort requests `mesh rollout`
// wrote on o, the candidate of r (see Request).
func (m *Manager) requests(r *resource, o metav1.Object) {
	promote, abort, err := ParseRequests(o.GetAnnotations())
	if err != nil {
		if r.badRequest != err.Error() {
			r.badRequest = err.Error()
			m.record(r, "Invalid", err.Error()+"; the request is not carried out")
		}
		return
	}
	gen := o.GetGeneration()
	stage := r.stage
	defer func() {
		if r.phase != Progressing || r.stage != stage {
			m.stepped = true
		}
	}()
	switch {
	case abort != nil && abort.Generation == gen:
		m.rollBack(r, "Aborted", fmt.Sprintf("aborted by hand (%s: %q)", AnnotationAbort, o.GetAnnotations()[AnnotationAbort]))
	case promote != nil && promote.Generation == gen && promote.All:
		m.promote(r, fmt.Sprintf("promoted by hand (%s: %q)", AnnotationPromote, o.GetAnnotations()[AnnotationPromote]))
	case promote != nil && promote.Generation == gen && r.stage < promote.Stage:
		// Move on from the stage the request names; a rollout that
		// already has is not moved again.
		r.stage = promote.Stage - 1
		m.advance(r, fmt.Sprintf("promoted by hand (%s: %q)", AnnotationPromote, o.GetAnnotations()[AnnotationPromote]))
	}
}

func (m *Manager) stop(r *resource) {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if r.check != nil {
		r.check.Stop()
		r.check = nil
	}
	r.next = time.Time{}
}

// soaked moves a rollout whose stage has soaked to its next stage.
func (m *Manager) soaked(id string, rev uint64, stage int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.resources[id]
	if !current(r, rev, stage) || !m.leads() {
		return // superseded meanwhile, or the leader steps it
	}
	if r.spec.Gated() && m.Health != nil {
		// The last word on a gated stage is a check at its end.
		go m.checkHealth(id, rev, stage, true)
		return
	}
	m.advance(r, "the stage soaked for "+r.spec.Interval.String())
	m.push(model.Change{Full: true})
}

func (m *Manager) advance(r *resource, why string) {
	r.stage++
	if r.stage >= len(r.spec.Stages)-1 {
		m.promote(r, why)
		return
	}
	m.schedule(r)
	m.record(r, "StageAdvanced", fmt.Sprintf("stage %d of %d: %d%% of the affected proxies (%s)", r.stage+1, len(r.spec.Stages), r.spec.Stages[r.stage], why))
}

// promote releases r's candidate: the last stage is every proxy.
func (m *Manager) promote(r *resource, why string) {
	m.stop(r)
	r.stage = len(r.spec.Stages) - 1
	r.released, r.phase, r.reason = r.applied, Released, ""
	r.since = m.clock().Now()
	m.record(r, "Promoted", "released to every proxy ("+why+")")
}

// Reject rolls a candidate back everywhere: a staged proxy refused it.
// A rejection of an older candidate than the current one is ignored.
func (m *Manager) Reject(rej Rejection) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.resources[rej.ID]
	if r == nil || r.phase != Progressing || r.revision != rej.Revision {
		return
	}
	if !m.leads() {
		// The leader rolls back, for every replica; it knows the
		// candidate by its generation (revisions are each replica's own).
		rej.Generation = r.applied.GetGeneration()
		if m.Forward != nil {
			m.Forward(rej)
		}
		m.log().Info("rollout rejection handed to the leader", "resource", rej.ID, "generation", rej.Generation, "proxy", rej.Proxy, "type", rej.Type)
		return
	}
	m.rollBack(r, "RolledBack", fmt.Sprintf("proxy %s rejected the candidate's %s: %s", rej.Proxy, rej.Type, rej.Reason))
	m.push(model.Change{Full: true})
}

func (m *Manager) rollBack(r *resource, reason, msg string) {
	m.stop(r)
	r.phase, r.reason = RolledBack, msg
	r.since = m.clock().Now()
	m.record(r, reason, msg+"; every proxy is back on the released version")
}

// Promote skips the soak of id's current stage (`mesh rollout promote`).
func (m *Manager) Promote(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.progressing(id)
	if err != nil {
		return err
	}
	m.advance(r, "promoted by hand")
	m.push(model.Change{Full: true})
	return nil
}

// Abort rolls id's candidate back now (`mesh rollout abort`).
func (m *Manager) Abort(id, why string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.progressing(id)
	if err != nil {
		return err
	}
	if why == "" {
		why = "aborted by hand"
	}
	m.rollBack(r, "Aborted", why)
	m.push(model.Change{Full: true})
	return nil
}

func (m *Manager) progressing(id string) (*resource, error) {
	r := m.resources[id]
	if r == nil {
		return nil, fmt.Errorf("%s has no rollout (no %s annotation, or no change since pilot started)", id, AnnotationStages)
	}
	if r.phase != Progressing {
		return nil, fmt.Errorf("%s is not rolling out (it is %s)", id, r.phase)
	}
	return r, nil
}

func (m *Manager) record(r *resource, reason, msg string) {
	e := Event{Time: m.clock().Now(), ID: r.id, Revision: r.revision, Reason: reason, Message: msg, Echo: m.echo}
	if r.applied != nil {
		e.UID, e.Generation = string(r.applied.GetUID()), r.applied.GetGeneration()
	}
	if r.phase == Progressing || reason == "Promoted" {
		e.Stage = r.stage + 1
		if r.spec != nil && r.stage < len(r.spec.Stages) {
			e.Percent = r.spec.Stages[r.stage]
		}
	}
	r.history = append(r.history, e)
	if len(r.history) > maxHistory {
		r.history = r.history[len(r.history)-maxHistory:]
	}
	m.log().Info("rollout", "resource", r.id, "revision", r.revision, "step", reason, "message", msg)
	m.keep()
	if m.OnEvent != nil {
		m.OnEvent(e)
	}
}

// keep offers the store the state of every rollout (the store writes it
// while this replica leads).
func (m *Manager) keep() {
	if m.Store == nil {
		return
	}
	all := map[string]Saved{}
	for id, x := range m.resources {
		if sv, ok := x.saved(); ok {
			all[id] = sv
		}
	}
	m.Store.Offer(all)
}

// push hands the released world and the candidates in flight to Push.
func (m *Manager) push(ch model.Change) {
	if m.applied == nil || m.Push == nil {
		return
	}
	in := m.applied.Input()
	swapped := false
	var plan Plan
	ids := make([]string, 0, len(m.resources))
	for id := range m.resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := m.resources[id]
		if r.released != r.applied {
			r.kind.Put(&in, r.namespace, r.name, r.released)
			swapped = true
		}
		if r.phase == Progressing {
			plan.Candidates = append(plan.Candidates, Candidate{
				ID: r.id, Kind: r.kind, Namespace: r.namespace, Name: r.name, Object: r.applied,
				Percent: r.spec.Stages[r.stage], Revision: r.revision,
			})
		}
	}
	base := m.applied
	if swapped {
		base = model.Build(m.applied.Version, in)
	}
	m.base = base
	counts := m.Push(base, ch, plan)
	for _, c := range plan.Candidates {
		if n, ok := counts[c.ID]; ok {
			m.resources[c.ID].counts = n
		}
	}
}

// Statuses returns every staged resource's state, sorted by id.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.resources))
	for _, r := range m.resources {
		out = append(out, r.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// History returns the events of id, oldest first.
func (m *Manager) History(id string) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.resources[id]
	if r == nil {
		return nil, fmt.Errorf("%s has no rollout history", id)
	}
	return append([]Event(nil), r.history...), nil
}

func (r *resource) status() Status {
	s := Status{
		ID: r.id, Kind: kindName(r.kind), Namespace: r.namespace, Name: r.name, Phase: r.phase,
		Revision: r.revision, Since: r.since, Reason: r.reason,
	}
	if r.applied != nil {
		s.Generation = r.applied.GetGeneration()
	}
	if !r.next.IsZero() {
		next := r.next
		s.NextStep = &next
	}
	if r.spec != nil {
		s.Stages = r.spec.Stages
		if r.spec.Interval > 0 {
			s.Interval = r.spec.Interval.String()
		}
		if r.spec.Has5xxGate {
			v := r.spec.Max5xxRatio
			s.Max5xxRatio = &v
		}
		if r.spec.HasLatencyGate {
			v := r.spec.MaxLatencyIncrease
			s.MaxLatencyIncrease = &v
		}
	}
	if r.phase == Progressing {
		s.Stage = r.stage + 1
		s.Affected, s.Staged = r.counts.Affected, r.counts.Staged
		s.Health = r.health
	}
	return s
}

// Ref is a staged resource as the command line names it.
type Ref struct {
	Kind            *model.Kind
	Namespace, Name string
}

// ID is the resource's id (Kind/namespace/name).
func (r Ref) ID() string { return ID(r.Kind, r.Namespace, r.Name) }

// ParseID reads a KIND/NAME or KIND/NAMESPACE/NAME reference (KIND as in
// the kind table, case-insensitive) into a resource id.
func ParseID(ref, namespace string) (string, error) {
	r, err := ParseRef(ref, namespace)
	if err != nil {
		return "", err
	}
	return r.ID(), nil
}

// ParseRef reads a KIND/NAME or KIND/NAMESPACE/NAME reference (KIND as in
// the kind table or its plural, case-insensitive).
func ParseRef(ref, namespace string) (Ref, error) {
	parts := strings.Split(ref, "/")
	var kind, ns, name string
	switch len(parts) {
	case 2:
		kind, ns, name = parts[0], namespace, parts[1]
	case 3:
		kind, ns, name = parts[0], parts[1], parts[2]
	default:
		return Ref{}, fmt.Errorf("%q: want KIND/NAME (e.g. VirtualService/reviews) or KIND/NAMESPACE/NAME", ref)
	}
	for _, k := range model.Kinds {
		if k.CRD && (strings.EqualFold(kindName(k), kind) || strings.EqualFold(k.Plural, kind)) && name != "" && ns != "" {
			return Ref{Kind: k, Namespace: ns, Name: name}, nil
		}
	}
	return Ref{}, fmt.Errorf("%q: %q is not a kind of config resource pilot stages", ref, kind)
}
