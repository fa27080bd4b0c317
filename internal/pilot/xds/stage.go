package xds

import (
	"sort"
	"strings"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/rollout"
)

// Staged release (internal/pilot/rollout, docs/rollout.md): while changes
// are staged the push context built from the snapshot is the released
// world, which most proxies get; each candidate has a context of its own
// (the released world with that one resource at its candidate version),
// which decides the proxies it affects and serves the staged ones. A
// proxy staged for several candidates gets a context with all of them.
// Without candidates none of this runs.

// staging is what one push of a plan decided.
type staging struct {
	plan  rollout.Plan
	cands map[string]*PushContext // by candidate id: released world + that candidate
	// variants are the contexts proxies are served from, by variant key
	// (the sorted ids of the candidates a proxy is staged for).
	variants map[string]*PushContext
	assign   map[string]string // node id → variant key
	byID     map[string]rollout.Candidate
}

// contextFor returns the context proxy id is served from and its variant
// key ("" for the released world).
func (st *staging) contextFor(id string, pc *PushContext) (*PushContext, string) {
	if st == nil {
		return pc, ""
	}
	key := st.assign[id]
	if key == "" {
		return pc, ""
	}
	return st.variants[key], key
}

// stage works out, for each candidate of plan, the connected proxies it
// affects (their config differs between the released and the candidate
// version; dependency tracking skips those it cannot reach) and the share
// of them its stage gives it (rollout.Choose), and builds the contexts
// they are served from.
func (s *Server) stage(pc *PushContext, plan rollout.Plan, proxies []*proxyState) (*staging, map[string]rollout.Counts) {
	if len(plan.Candidates) == 0 {
		return nil, nil
	}
	st := &staging{plan: plan, cands: map[string]*PushContext{}, variants: map[string]*PushContext{}, assign: map[string]string{}, byID: map[string]rollout.Candidate{}}
	counts := map[string]rollout.Counts{}
	stagedFor := map[string][]string{}
	for _, c := range plan.Candidates {
		st.byID[c.ID] = c
		in := pc.Snap.Input()
		c.Kind.Put(&in, c.Namespace, c.Name, c.Object)
		cpc := NewPushContext(model.Build(pc.Snap.Version, in))
		st.cands[c.ID] = cpc
		d, tracked := diffConfig(pc, cpc.Snap, cpc)
		var members []rollout.Member
		for _, ps := range proxies {
			released, err := pc.Generate(ps.proxy, nil)
			if err != nil {
				continue
			}
			if tracked && !d.dirty(released.base) && !d.Workloads[ps.proxy.Namespace+"/"+ps.proxy.IP] {
				continue
			}
			cand, err := cpc.Generate(ps.proxy, nil)
			if err == nil && sameConfig(released, cand) {
				continue
			}
			members = append(members, rollout.Member{ID: ps.proxy.ID, Workload: workloadOf(pc.Snap, ps.proxy)})
		}
		chosen := rollout.Choose(c.ID, members, c.Percent)
		n := rollout.Counts{Affected: len(members)}
		for _, mb := range members {
			n.Members = append(n.Members, mb.ID)
		}
		sort.Strings(n.Members)
		for id := range chosen {
			stagedFor[id] = append(stagedFor[id], c.ID)
			n.Staged = append(n.Staged, id)
		}
		sort.Strings(n.Staged)
		counts[c.ID] = n
	}
	for proxy, ids := range stagedFor {
		sort.Strings(ids)
		key := strings.Join(ids, ",")
		st.assign[proxy] = key
		if st.variants[key] != nil {
			continue
		}
		if len(ids) == 1 {
			st.variants[key] = st.cands[ids[0]]
			continue
		}
		in := pc.Snap.Input()
		for _, id := range ids {
			c := st.byID[id]
			c.Kind.Put(&in, c.Namespace, c.Name, c.Object)
		}
		st.variants[key] = NewPushContext(model.Build(pc.Snap.Version, in))
	}
	return st, counts
}

// sameConfig reports whether two generations give a proxy the same
// clusters, endpoints, listeners and routes.
func sameConfig(a, b *Resources) bool {
	for _, t := range TypeURLs[:4] {
		if a.Version(t) != b.Version(t) {
			return false
		}
	}
	return true
}

// workloadOf names the workload a proxy runs, so a stage is spread over
// workloads: the pod's canonical service and revision as Istio derives
// them (labels), else its owner, else the pod itself.
func workloadOf(snap *model.Snapshot, p *model.Proxy) string {
	pod := snap.Pod(p.Namespace, p.PodName)
	if pod == nil {
		return p.Namespace + "/" + p.PodName
	}
	l := pod.Labels
	name := first(l["service.istio.io/canonical-name"], l["app.kubernetes.io/name"], l["app"])
	rev := first(l["service.istio.io/canonical-revision"], l["app.kubernetes.io/version"], l["version"])
	if name == "" && len(pod.OwnerReferences) > 0 {
		name = pod.OwnerReferences[0].Kind + ":" + pod.OwnerReferences[0].Name
	}
	if name == "" {
		name = pod.Name
	}
	return p.Namespace + "/" + name + "@" + rev
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// blame returns the candidates of variant key whose version changes the
// proxy's config of typeURL ("": of any type): those a rejection of that
// type can be laid on.
func (st *staging) blame(key string, pc *PushContext, p *model.Proxy, typeURL string) []rollout.Candidate {
	if st == nil || key == "" || typeURL == TypeURLs[4] {
		return nil
	}
	released, err := pc.Generate(p, nil)
	if err != nil {
		return nil
	}
	var out []rollout.Candidate
	for _, id := range strings.Split(key, ",") {
		cpc := st.cands[id]
		if cpc == nil {
			continue
		}
		cand, err := cpc.Generate(p, nil)
		if err != nil || typeURL == "" && !sameConfig(cand, released) || typeURL != "" && cand.Version(typeURL) != released.Version(typeURL) {
			out = append(out, st.byID[id])
		}
	}
	return out
}
