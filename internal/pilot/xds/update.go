package xds

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// The push: a new snapshot in, the proxies it reaches regenerated through
// the push context (pushcontext.go, generate.go) and their views installed
// in the cache that the xDS streams serve (server.go, cache.go).

// Update switches to a new model snapshot and pushes what changed: for an
// endpoint-only change only proxies using those endpoints are regenerated;
// for a config change of a tracked kind (see diffConfig) only proxies whose
// group it can reach; and only types whose content changed are sent.
func (s *Server) Update(snap *model.Snapshot, ch model.Change) {
	s.UpdateStaged(snap, ch, rollout.Plan{})
}

// UpdateStaged is Update while changes are staged: snap is the released
// world, served to every proxy but those the plan's stages give a
// candidate (stage.go). It returns what the push made of each candidate.
// With an empty plan it is Update.
func (s *Server) UpdateStaged(snap *model.Snapshot, ch model.Change, plan rollout.Plan) map[string]rollout.Counts {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	start := time.Now()
	s.mu.Lock()
	staged := s.staging.Load() != nil || len(plan.Candidates) > 0
	old := s.pc
	kind := "full"
	var pc *PushContext
	var affected []*proxyState
	switch {
	case old != nil && !ch.Full:
		kind = "eds"
		pc = old.Reuse(snap, ch.EndpointHosts)
		for _, ps := range s.proxies {
			if ps.usesAny(ch.EndpointHosts) || ownPodChanged(old.Snap, snap, ps.proxy) || staged && ps.staged() {
				affected = append(affected, ps)
			}
		}
	case old != nil:
		pc = NewPushContext(snap)
		pc.follow(old)
		if s.RebuildAll {
			break
		}
		d, tracked := diffConfig(old, snap, pc)
		if !tracked {
			break
		}
		kind = "config"
		for h := range ch.EndpointHosts {
			d.EndpointHosts[h] = true
		}
		keep := map[string]*Resources{}
		for _, ps := range s.proxies {
			ps.mu.Lock()
			g := (*Resources)(nil)
			if ps.res != nil && ps.variant == "" {
				// A staged proxy's groups belong to its candidate's
				// context: never carried into the released one.
				g = ps.res.base
			}
			ps.mu.Unlock()
			switch {
			case g == nil || d.dirty(g) || ownPodChanged(old.Snap, snap, ps.proxy) ||
				d.Workloads[ps.proxy.Namespace+"/"+ps.proxy.IP]:
				affected = append(affected, ps)
			default:
				keep[g.key] = g
				if g.usesAny(d.EndpointHosts) {
					affected = append(affected, ps)
				}
			}
		}
		pc.carry(old, &d, keep)
		s.Log.Debug("config change", "kinds", d.Kinds, "hosts", len(d.Hosts), "namespaces", len(d.Namespaces))
	default:
		pc = NewPushContext(snap)
	}
	if kind == "full" {
		affected = affected[:0]
		for _, ps := range s.proxies {
			affected = append(affected, ps)
		}
	}
	var all []*proxyState
	if staged {
		all = make([]*proxyState, 0, len(s.proxies))
		for _, ps := range s.proxies {
			all = append(all, ps)
		}
	}
	s.pc = pc
	s.mu.Unlock()
	s.once.Do(func() { close(s.ready) })

	var counts map[string]rollout.Counts
	if staged {
		var st *staging
		st, counts = s.stage(pc, plan, all)
		s.mu.Lock()
		s.plan = plan
		s.staging.Store(st)
		s.mu.Unlock()
		// Proxies moving between versions, and every staged one (its
		// candidate's context is new), are regenerated.
		in := make(map[*proxyState]bool, len(affected))
		for _, ps := range affected {
			in[ps] = true
		}
		for _, ps := range all {
			if in[ps] {
				continue
			}
			ps.mu.Lock()
			was := ps.variant
			ps.mu.Unlock()
			if _, now := st.contextFor(ps.proxy.ID, pc); was != "" || now != "" {
				affected = append(affected, ps)
			}
		}
	}
	pushed := s.regenerate(pc, affected, start)
	pc.forgetPrevious()
	if s.Metrics != nil {
		s.Metrics.GenerateSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		s.Metrics.ProxiesRegenerated.WithLabelValues(kind).Add(float64(len(affected)))
		s.Metrics.GroupsBuilt.WithLabelValues(kind).Add(float64(pc.Built()))
	}
	s.Log.Debug("push", "kind", kind, "snapshot", snap.Version, "affected", len(affected), "pushed", pushed, "groups built", pc.Built(), "took", time.Since(start))
	return counts
}

// staged reports whether the proxy is served a candidate.
func (ps *proxyState) staged() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.variant != ""
}

func ownPodChanged(a, b *model.Snapshot, p *model.Proxy) bool {
	return a.Pod(p.Namespace, p.PodName) != b.Pod(p.Namespace, p.PodName)
}

func (ps *proxyState) usesAny(hosts map[string]bool) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.res == nil {
		return true
	}
	for h := range hosts {
		if ps.res.EndpointHosts[h] {
			return true
		}
	}
	return false
}

// regenerate rebuilds the proxies' resources in parallel and installs the
// snapshots that differ; it returns how many did.
func (s *Server) regenerate(pc *PushContext, proxies []*proxyState, start time.Time) int {
	work := make(chan *proxyState)
	var wg sync.WaitGroup
	var mu sync.Mutex
	pushed := 0
	st := s.staging.Load()
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ps := range work {
				vpc, variant := st.contextFor(ps.proxy.ID, pc)
				changed, err := s.push(vpc, ps, variant, start)
				if err != nil {
					s.Log.Error("generate config", "proxy", ps.proxy.ID, "err", err)
					if variant != "" {
						s.rejected(st, pc, ps, variant, "", err.Error())
					}
					continue
				}
				if changed {
					mu.Lock()
					pushed++
					mu.Unlock()
				}
			}
		}()
	}
	for _, ps := range proxies {
		work <- ps
	}
	close(work)
	wg.Wait()
	return pushed
}

// push generates one proxy's resources from pc (its variant's context:
// "" for the released world) and sets its snapshot when a type changed.
func (s *Server) push(pc *PushContext, ps *proxyState, variant string, start time.Time) (bool, error) {
	secrets := s.Secrets
	if ps.plaintext.Load() {
		secrets = nil
	}
	res, err := pc.generate(ps.proxy, secrets, &ps.key)
	if err != nil {
		return false, err
	}
	if err := res.Validate(); err != nil {
		// Sending config Envoy would reject only produces NACKs; keep the last good one.
		if s.Metrics != nil {
			s.Metrics.InvalidConfigs.Inc()
		}
		return false, fmt.Errorf("invalid config not sent: %w", err)
	}
	ps.mu.Lock()
	changed := ps.res == nil
	for _, t := range TypeURLs {
		if ps.res == nil || ps.res.Version(t) != res.Version(t) {
			changed = true
			ps.pushStart[t] = start
		}
	}
	ps.res = res
	ps.variant = variant
	if changed {
		// Under ps.mu so two pushes to one proxy cannot install out of order.
		s.cache.setView(ps.proxy.ID, res.gens)
	}
	ps.mu.Unlock()
	return changed, nil
}
