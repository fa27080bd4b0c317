package xds

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/pilot/model"
)

// Two workloads of different Services in one namespace have different
// inbound sides, so they are two groups; what they are sent for the
// outbound side must still be held once, not once per group.
func TestGroupsShareTheirOutboundSide(t *testing.T) {
	w, pc := bookinfo(t)
	pp := generate(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"))
	dt := generate(t, pc, w.PodProxy(model.SidecarProxy, "details-v1"))
	if pp.base == dt.base {
		t.Fatal("productpage and details serve different Services but share one group")
	}
	for _, typ := range []string{resourcev3.EndpointType, resourcev3.RouteType} {
		i := typeIndexOf(typ)
		if pp.gens[i] != dt.gens[i] {
			t.Errorf("%s: the same outbound config is held twice", ShortType(typ))
		}
	}
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		i := typeIndexOf(typ)
		a, b := pp.gens[i], dt.gens[i]
		if a.version == b.version {
			if a != b {
				t.Errorf("%s: the same config is held twice", ShortType(typ))
			}
			continue
		}
		if a.base == nil || a.base != b.base {
			t.Errorf("%s: the outbound side is not one shared layer", ShortType(typ))
		}
		// What is served is the whole config, base and own together.
		if n := len(pp.Names(typ)); n != a.size || n <= len(a.own) {
			t.Errorf("%s: %d resources served, generation holds %d (%d own)", ShortType(typ), n, a.size, len(a.own))
		}
	}
	if pp.Version(resourcev3.ClusterType) == dt.Version(resourcev3.ClusterType) {
		t.Error("CDS: the inbound clusters name their Services, yet came out the same")
	}
	if pp.gens[typeIndexOf(resourcev3.ClusterType)].lookup(InboundClusterName(9080)) == nil {
		t.Error("productpage's inbound cluster cannot be found by name")
	}
}

// A layered generation's diff must tell a client exactly what a diff of
// the same resources in one layer tells it, but for resending a resource
// that moved between layers unchanged.
func TestLayeredDiffMatchesFlatDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func(name string, v int) *item { return newItem(name, wrapperspb.Int64(int64(v))) }
	gen := func() ([]*item, int) {
		var its []*item
		for i := 0; i < 12; i++ {
			if rng.IntN(4) == 0 {
				continue // absent from this generation
			}
			its = append(its, mk(fmt.Sprintf("r%02d", i), rng.IntN(2)))
		}
		return its, rng.IntN(len(its) + 1)
	}
	names := func(rs []string) string { sort.Strings(rs); return fmt.Sprint(rs) }
	for round := 0; round < 500; round++ {
		oldIts, ok := gen()
		newIts, nk := gen()
		flatOld := newTypeGen("t", "o", oldIts)
		flatNew := newTypeGen("t", "n", newIts)
		old := newLayeredGen("t", "o", newTypeGen("t", "ob", oldIts[:ok]), oldIts[ok:])
		cur := newLayeredGen("t", "n", newTypeGen("t", "nb", newIts[:nk]), newIts[nk:])
		want, got := flatNew.diffFrom(flatOld), cur.diffFrom(old)
		if names(want.removed) != names(got.removed) {
			t.Fatalf("round %d: removed %v, want %v", round, got.removed, want.removed)
		}
		wantChanged := map[string]bool{}
		for _, r := range want.changed {
			wantChanged[r.Name] = true
		}
		gotChanged := map[string]bool{}
		for _, r := range got.changed {
			gotChanged[r.Name] = true
			if !wantChanged[r.Name] {
				o := old.lookup(r.Name)
				if o == nil || o.version != r.Version {
					t.Fatalf("round %d: %s reported changed wrongly", round, r.Name)
				}
			}
		}
		for n := range wantChanged {
			if !gotChanged[n] {
				t.Fatalf("round %d: %s changed but the layered diff leaves it out", round, n)
			}
		}
		if len(cur.items()) != len(newIts) || cur.size != len(newIts) {
			t.Fatalf("round %d: %d items, want %d", round, len(cur.items()), len(newIts))
		}
	}
}
