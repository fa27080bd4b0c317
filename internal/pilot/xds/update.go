package xds

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"mesh.dev/mesh/internal/pilot/model"
)

// The push: a new snapshot in, the proxies it reaches regenerated through
// the push context (pushcontext.go, generate.go) and their views installed
// in the cache that the xDS streams serve (server.go, cache.go).

// Update switches to a new model snapshot and pushes what changed: for an
// endpoint-only change only proxies using those endpoints are regenerated;
// for a config change of a tracked kind (see diffConfig) only proxies whose
// group it can reach; and only types whose content changed are sent.
func (s *Server) Update(snap *model.Snapshot, ch model.Change) {
	start := time.Now()
	s.mu.Lock()
	old := s.pc
	kind := "full"
	var pc *PushContext
	var affected []*proxyState
	switch {
	case old != nil && !ch.Full:
		kind = "eds"
		pc = old.Reuse(snap, ch.EndpointHosts)
		for _, ps := range s.proxies {
			if ps.usesAny(ch.EndpointHosts) || ownPodChanged(old.Snap, snap, ps.proxy) {
				affected = append(affected, ps)
			}
		}
	case old != nil:
		pc = NewPushContext(snap)
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
			if ps.res != nil {
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
	s.pc = pc
	s.mu.Unlock()
	s.once.Do(func() { close(s.ready) })

	pushed := s.regenerate(pc, affected, start)
	if s.Metrics != nil {
		s.Metrics.GenerateSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		s.Metrics.ProxiesRegenerated.WithLabelValues(kind).Add(float64(len(affected)))
		s.Metrics.GroupsBuilt.WithLabelValues(kind).Add(float64(pc.Built()))
	}
	s.Log.Debug("push", "kind", kind, "snapshot", snap.Version, "affected", len(affected), "pushed", pushed, "groups built", pc.Built(), "took", time.Since(start))
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
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ps := range work {
				changed, err := s.push(pc, ps, start)
				if err != nil {
					s.Log.Error("generate config", "proxy", ps.proxy.ID, "err", err)
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

// push generates one proxy's resources and sets its snapshot when a type changed.
func (s *Server) push(pc *PushContext, ps *proxyState, start time.Time) (bool, error) {
	secrets := s.Secrets
	if ps.plaintext.Load() {
		secrets = nil
	}
	res, err := pc.Generate(ps.proxy, secrets)
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
	if changed {
		// Under ps.mu so two pushes to one proxy cannot install out of order.
		s.cache.setView(ps.proxy.ID, res.gens)
	}
	ps.mu.Unlock()
	return changed, nil
}
