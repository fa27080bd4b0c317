package rollout

import (
	"fmt"
	"testing"
)

func members(workloads map[string]int) []Member {
	var out []Member
	for w, n := range workloads {
		for i := 0; i < n; i++ {
			out = append(out, Member{ID: fmt.Sprintf("sidecar~198.18.0.%d~%s-%d.default~default.svc.cluster.local", len(out)+1, w, i), Workload: "default/" + w})
		}
	}
	return out
}

func TestChooseShareStableSpread(t *testing.T) {
	ms := members(map[string]int{"cart": 10, "orders": 10})
	prev := map[string]bool{}
	for _, pct := range []int{10, 25, 50, 100} {
		got := Choose("VirtualService/default/cart", ms, pct)
		if want := (pct*len(ms) + 99) / 100; len(got) != want {
			t.Errorf("%d%%: %d proxies, want %d", pct, len(got), want)
		}
		for id := range prev {
			if !got[id] {
				t.Errorf("%d%%: %s was staged at the lower stage but not now", pct, id)
			}
		}
		per := map[string]int{}
		for _, m := range ms {
			if got[m.ID] {
				per[m.Workload]++
			}
		}
		if d := per["default/cart"] - per["default/orders"]; d > 1 || d < -1 {
			t.Errorf("%d%%: %v is not spread over the workloads", pct, per)
		}
		prev = got
	}
	// The same inputs in another order choose the same proxies.
	rev := append([]Member(nil), ms...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	a, b := Choose("x", ms, 30), Choose("x", rev, 30)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("order changed the choice: %v vs %v", a, b)
	}
	if len(Choose("x", ms[:3], 1)) != 1 {
		t.Error("a 1% stage of 3 proxies should stage one, not none")
	}
	if len(Choose("x", nil, 50)) != 0 {
		t.Error("no members, no choice")
	}
}
