package rollout

import (
	"hash/fnv"
	"sort"
)

// Member is a proxy a change affects, with the workload it belongs to.
type Member struct {
	ID       string // the proxy's node id
	Workload string // namespace and workload (Deployment and revision) it runs
}

// Choose returns the ids of the members a stage of percent gives the
// candidate: ceil(percent × members / 100) of them, so a stage is never
// empty. The choice is stable (a proxy's place comes from hashing its id
// with seed, the rollout) and spread over workloads (each workload's
// proxies take turns, so a stage of 10% of a 10-replica Deployment and a
// 10-replica StatefulSet takes one of each, not two of one); a higher
// percentage keeps every proxy a lower one chose.
func Choose(seed string, members []Member, percent int) map[string]bool {
	type ranked struct {
		id   string
		hash uint64
		pos  float64 // where in its workload's turn: (rank + 0.5) / size
	}
	byWorkload := map[string][]ranked{}
	for _, m := range members {
		h := fnv.New64a()
		_, _ = h.Write([]byte(seed))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(m.ID))
		byWorkload[m.Workload] = append(byWorkload[m.Workload], ranked{id: m.ID, hash: h.Sum64()})
	}
	var all []ranked
	for _, rs := range byWorkload {
		sort.Slice(rs, func(i, j int) bool { return less(rs[i].hash, rs[j].hash, rs[i].id, rs[j].id) })
		for i := range rs {
			rs[i].pos = (float64(i) + 0.5) / float64(len(rs))
		}
		all = append(all, rs...)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].pos != all[j].pos {
			return all[i].pos < all[j].pos
		}
		return less(all[i].hash, all[j].hash, all[i].id, all[j].id)
	})
	n := (percent*len(all) + 99) / 100
	out := make(map[string]bool, n)
	for _, r := range all[:min(n, len(all))] {
		out[r.id] = true
	}
	return out
}

func less(a, b uint64, ida, idb string) bool {
	if a != b {
		return a < b
	}
	return ida < idb
}
