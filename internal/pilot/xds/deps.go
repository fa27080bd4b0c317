package xds

import (
	"maps"
	"sort"
	"strings"

	"mesh.dev/mesh/internal/pilot/model"
)

// configDelta is what a config change can reach (model.Diff works it out
// kind by kind from the kind table), with the checks of proxy groups and
// scopes against it.
type configDelta struct{ model.Delta }

// diffConfig compares the config of two snapshots. ok is false when every
// group must be rebuilt: a kind the table cannot bound changed (see
// model.Diff), or rules that start or stop matching on client labels (group
// keys change).
func diffConfig(old *PushContext, next *model.Snapshot, nextPC *PushContext) (d configDelta, ok bool) {
	if old.sourceLabels != nextPC.sourceLabels || old.l4SourceLabels != nextPC.l4SourceLabels {
		return d, false
	}
	d.Delta, ok = model.Diff(old.Snap, next)
	sort.Strings(d.Kinds)
	return d, ok
}

// dirty reports whether a group's config may differ under d.
func (d *configDelta) dirty(g *Resources) bool {
	if g.router || d.Namespaces[g.groupNS] {
		return true
	}
	return g.scope == nil || d.scopeDirty(g.scope)
}

func (d *configDelta) scopeDirty(sc *scope) bool {
	if d.Namespaces[sc.ns] {
		return true
	}
	for h := range d.Hosts {
		if sc.hosts[h] {
			return true
		}
	}
	for _, svc := range d.Services {
		if sc.admits(svc) {
			return true
		}
	}
	return false
}

// carry gives pc, the context for the snapshot after a tracked change,
// everything of old that d cannot reach: memoised clusters, endpoints,
// virtual hosts, scopes and route tables of untouched hosts and scopes,
// and the groups in keep (untouched ones as they are, those using a host
// whose endpoints changed to have their EDS rebuilt).
func (pc *PushContext) carry(old *PushContext, d *configDelta, keep map[string]*Resources) {
	old.mu.Lock()
	defer old.mu.Unlock()
	for k, l := range old.clusters {
		if h, _, _ := strings.Cut(k, "|"); !d.Hosts[h] && !d.EndpointHosts[h] {
			pc.clusters[k] = l
		}
	}
	for k, l := range old.endpoints {
		if h, _, _ := strings.Cut(k, "|"); !d.Hosts[h] && !d.EndpointHosts[h] {
			pc.endpoints[k] = l
		}
	}
	for k, l := range old.vhosts {
		if h, _, _ := strings.Cut(k, "|"); !d.Hosts[h] {
			pc.vhosts[k] = l
		}
	}
	for k, l := range old.scopes {
		if l.done.Load() && !d.scopeDirty(l.v) {
			pc.scopes[k] = l
		}
	}
	for k, l := range old.routes {
		if sk, _, _ := strings.Cut(k, "|"); pc.scopes[sk] != nil {
			pc.routes[k] = l
		}
	}
	pc.prevGroups = map[string]*lazy[*Resources]{}
	pc.changedHosts = maps.Clone(d.EndpointHosts)
	for k, g := range keep {
		l := &lazy[*Resources]{v: g}
		l.once.Do(func() {})
		l.done.Store(true)
		if g.usesAny(d.EndpointHosts) {
			pc.prevGroups[k] = l
		} else {
			pc.groups[k] = l
		}
	}
}

func (r *Resources) usesAny(hosts map[string]bool) bool {
	for h := range hosts {
		if r.EndpointHosts[h] {
			return true
		}
	}
	return false
}
