package rollout

import (
	"context"
	"fmt"
	"sort"
	"time"

	"mesh.dev/mesh/internal/pilot/model"
)

// Several pilot replicas serve one mesh, each to the proxies connected to
// it, and must agree on where each rollout stands. One of them, the
// leader (Manager.Leads: the status writer's lease), steps the rollouts:
// its soak timers, health checks, promote and abort requests and the
// rejections of every replica's proxies move them, and it keeps their
// state in the cluster (Store). The others follow that state: a stage the
// leader began is the stage they serve, from the instant it began; they
// hand their own proxies' rejections to the leader (Forward) instead of
// rolling back by themselves. A replica that becomes the leader takes up
// the state the last one kept and steps on from there (Lead).

// Follow takes the state the leader keeps (as the store read it) while
// this replica does not lead: each rollout of the generation this
// replica has applied takes the leader's phase, stage and soak, and this
// replica's proxies are served accordingly. A leader ignores it.
func (m *Manager) Follow(all map[string]Saved) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leads() {
		return
	}
	m.leader = all
	if m.applied == nil || m.resources == nil {
		return // the first snapshot follows it
	}
	if m.follow(all) {
		m.push(model.Change{Full: true})
	}
}

// follow lays the leader's state on the resources of the same generation;
// true when what some proxy is served changed.
func (m *Manager) follow(all map[string]Saved) bool {
	m.echo = true
	defer func() { m.echo = false }()
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	changed := false
	for _, id := range ids {
		sv := all[id]
		r := m.resources[id]
		if r == nil || r.applied == nil || r.spec == nil || !r.spec.Staged() || r.applied.GetGeneration() != sv.Generation {
			continue // not this generation here (yet): the leader or this replica lags
		}
		switch sv.Phase {
		case Progressing:
			if sv.Stage >= len(r.spec.Stages)-1 {
				continue
			}
			if r.phase == Progressing && r.stage == sv.Stage {
				if !r.since.Equal(sv.Since) {
					r.since = sv.Since // the leader began the stage a moment apart
					r.next = r.since.Add(r.spec.Interval)
				}
				continue
			}
			was, stage := r.phase, r.stage
			if was != Progressing {
				released, ok := decodeLike(sv.Released, r.applied)
				if !ok {
					continue
				}
				r.released = released
				r.revision++ // a new candidate for this replica's xDS server
			}
			m.stop(r)
			r.phase, r.stage, r.since, r.reason = Progressing, sv.Stage, sv.Since, ""
			r.next = r.since.Add(r.spec.Interval)
			r.zero, r.health = nil, nil
			changed = true
			if was == Progressing && sv.Stage > stage {
				m.record(r, "StageAdvanced", fmt.Sprintf("stage %d of %d: %d%% of the affected proxies (stepped by the leader)", r.stage+1, len(r.spec.Stages), r.spec.Stages[r.stage]))
			} else {
				m.record(r, "Resumed", fmt.Sprintf("following the leader: stage %d of %d, soaked since %s", r.stage+1, len(r.spec.Stages), r.since.UTC().Format(time.RFC3339)))
			}
		case Released:
			if r.phase != Progressing {
				continue
			}
			m.promote(r, "by the leader")
			changed = true
		case RolledBack:
			if r.phase != Progressing {
				continue
			}
			m.rollBack(r, "RolledBack", sv.Reason+" (rolled back by the leader)")
			r.reason = sv.Reason
			changed = true
		}
	}
	return changed
}

// Lead is called when this replica becomes the leader. It takes up the
// state the last leader kept and steps every rollout on from there: a
// stage keeps the soak it began with (one that ended while no replica
// led moves on now), and promote and abort requests written meanwhile
// are carried out.
func (m *Manager) Lead(ctx context.Context) {
	var all map[string]Saved
	if m.Store != nil {
		var err error
		if all, err = m.Store.Load(ctx); err != nil {
			m.log().Warn("rollout leader: the state kept by the last leader not read; stepping on from this replica's", "err", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leader = nil
	if m.applied == nil || m.resources == nil {
		return // the first snapshot resumes from the store
	}
	changed := all != nil && m.follow(all)
	ids := make([]string, 0, len(m.resources))
	for id := range m.resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := m.resources[id]
		if r.phase != Progressing {
			continue
		}
		m.stop(r)
		m.rearm(r)
		m.requests(r, r.applied)
	}
	m.log().Info("rollout leader: stepping the rollouts", "resources", len(ids))
	m.keep()
	if changed || m.stepped {
		m.stepped = false
		m.push(model.Change{Full: true})
	}
}

// Forwarded is a rejection another replica's proxy made, handed on by
// the store: the leader rolls the candidate back when it is the
// generation rolling out. It reports whether the rejection is done with
// (carried out, or about a generation gone); false when this replica
// does not lead or has not seen that generation yet.
func (m *Manager) Forwarded(rej Rejection) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.leads() {
		return false
	}
	r := m.resources[rej.ID]
	if r == nil || r.applied == nil {
		return m.applied != nil // deleted meanwhile (or no snapshot yet)
	}
	gen := r.applied.GetGeneration()
	switch {
	case gen < rej.Generation:
		return false
	case gen > rej.Generation || r.phase != Progressing:
		return true
	}
	m.rollBack(r, "RolledBack", fmt.Sprintf("proxy %s (served by another pilot replica) rejected the candidate's %s: %s", rej.Proxy, rej.Type, rej.Reason))
	m.push(model.Change{Full: true})
	return true
}
