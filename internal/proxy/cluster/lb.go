package cluster

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

type ringEntry struct {
	hash uint64
	host *Host
}

func newHostSet(hosts []*Host, ring bool, ringSize int) *hostSet {
	hs := &hostSet{hosts: hosts}
	for _, h := range hosts {
		for int(h.Priority) >= len(hs.priorities) {
			hs.priorities = append(hs.priorities, nil)
		}
		hs.priorities[h.Priority] = append(hs.priorities[h.Priority], h)
	}
	if ring && len(hosts) > 0 {
		var total uint64
		for _, h := range hosts {
			total += uint64(max(h.Weight, 1))
		}
		for _, h := range hosts {
			n := max(1, int(uint64(ringSize)*uint64(max(h.Weight, 1))/total))
			for i := 0; i < n; i++ {
				hs.ring = append(hs.ring, ringEntry{hash: xxhash.Sum64String(h.Addr + "_" + itoa(i)), host: h})
			}
		}
		slices.SortFunc(hs.ring, func(a, b ringEntry) int {
			switch {
			case a.hash < b.hash:
				return -1
			case a.hash > b.hash:
				return 1
			}
			return 0
		})
	}
	return hs
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	return string(b[n:])
}

// candidates returns the highest-priority level that has a healthy host, falling
// back to lower priorities as Envoy does when a level has none.
func (hs *hostSet) candidates(now int64) []*Host {
	for _, level := range hs.priorities {
		for _, h := range level {
			if h.Healthy(now) {
				return level
			}
		}
	}
	return nil
}

// pick chooses a host; hash is used by ring hash only, avoid excludes a host tried already.
func (c *Cluster) pick(hash uint64, hasHash bool, avoid *Host) *Host {
	hs := c.hosts.Load()
	if hs == nil || len(hs.hosts) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if c.policy == policyRingHash && len(hs.ring) > 0 {
		if !hasHash {
			hash = rand.Uint64()
		}
		i, _ := slices.BinarySearchFunc(hs.ring, hash, func(e ringEntry, t uint64) int {
			if e.hash < t {
				return -1
			}
			if e.hash > t {
				return 1
			}
			return 0
		})
		for n := 0; n < len(hs.ring); n++ {
			h := hs.ring[(i+n)%len(hs.ring)].host
			if h.Healthy(now) && (h != avoid || n == len(hs.ring)-1) {
				return h
			}
		}
		return nil
	}
	level := hs.candidates(now)
	panic := false
	if len(level) == 0 {
		if c.panicPct <= 0 {
			return nil
		}
		level, panic = hs.hosts, true // Envoy's panic mode: no healthy host anywhere, spread over all
	} else if c.panicPct > 0 {
		healthy := 0
		for _, h := range level {
			if h.Healthy(now) {
				healthy++
			}
		}
		panic = float64(healthy*100) < c.panicPct*float64(len(level))
	}
	level = c.localityFilter(level, now)
	switch c.policy {
	case policyLeastRequest:
		// Power of two choices, as Envoy does by default.
		var best *Host
		for i := 0; i < 2; i++ {
			h := c.healthyAt(level, rand.IntN(len(level)), now, avoid, panic)
			if h != nil && (best == nil || h.active.Load() < best.active.Load()) {
				best = h
			}
		}
		return best
	case policyRandom:
		return c.healthyAt(level, rand.IntN(len(level)), now, avoid, panic)
	default:
		return c.weightedRR(level, now, avoid, panic)
	}
}

// healthyAt scans from i for a healthy host other than avoid (unless it is the only one).
func (c *Cluster) healthyAt(level []*Host, i int, now int64, avoid *Host, panic bool) *Host {
	var fallback *Host
	for n := 0; n < len(level); n++ {
		h := level[(i+n)%len(level)]
		if !panic && !h.Healthy(now) {
			continue
		}
		if h == avoid {
			fallback = h
			continue
		}
		return h
	}
	return fallback
}

func (c *Cluster) weightedRR(level []*Host, now int64, avoid *Host, panic bool) *Host {
	weighted := false
	for _, h := range level {
		if h.Weight > 1 {
			weighted = true
			break
		}
	}
	n := c.rr.Add(1)
	if !weighted {
		return c.healthyAt(level, int(n%uint64(len(level))), now, avoid, panic)
	}
	var total uint64
	for _, h := range level {
		total += uint64(max(h.Weight, 1))
	}
	slot := n % total
	for i, h := range level {
		w := uint64(max(h.Weight, 1))
		if slot < w {
			return c.healthyAt(level, i, now, avoid, panic)
		}
		slot -= w
	}
	return c.healthyAt(level, 0, now, avoid, panic)
}

// localityFilter picks one locality by its weight when locality-weighted balancing is on.
func (c *Cluster) localityFilter(level []*Host, now int64) []*Host {
	if !c.localityWeighted {
		return level
	}
	weights := map[string]uint32{}
	var order []string
	for _, h := range level {
		if !h.Healthy(now) {
			continue
		}
		if _, ok := weights[h.Locality]; !ok {
			order = append(order, h.Locality)
		}
		weights[h.Locality] = h.LocalityWeight
	}
	if len(order) <= 1 {
		return level
	}
	var total uint32
	for _, l := range order {
		total += weights[l]
	}
	if total == 0 {
		return level
	}
	slot := rand.Uint32N(total)
	chosen := order[len(order)-1]
	for _, l := range order {
		if slot < weights[l] {
			chosen = l
			break
		}
		slot -= weights[l]
	}
	out := make([]*Host, 0, len(level))
	for _, h := range level {
		if h.Locality == chosen {
			out = append(out, h)
		}
	}
	return out
}
