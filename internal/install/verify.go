package install

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mesh.dev/mesh/internal/kube"
)

// Verifier compares a rendering with what the cluster holds.
type Verifier struct {
	Client *kube.Client
}

// DriftedObject is one object whose live fields differ from the rendering.
type DriftedObject struct {
	Ref    kube.Ref     `json:"object"`
	Fields []FieldDrift `json:"fields"`
}

// VerifyResult lists what is missing, drifted and left over.
type VerifyResult struct {
	Revision string          `json:"revision"`
	Checked  int             `json:"checked"`
	Missing  []kube.Ref      `json:"missing,omitempty"`
	Drifted  []DriftedObject `json:"drifted,omitempty"`
	// Extra are objects of the revision the rendering no longer has (an install would prune them).
	Extra []kube.Ref `json:"extra,omitempty"`
	// NotReady are workloads that exist but are not ready, with why.
	NotReady []kube.Readiness `json:"notReady,omitempty"`
}

// Clean reports whether the cluster matches the rendering.
func (r *VerifyResult) Clean() bool {
	return len(r.Missing) == 0 && len(r.Drifted) == 0 && len(r.Extra) == 0 && len(r.NotReady) == 0
}

// Run fetches every object of m and compares the fields m sets.
func (v *Verifier) Run(ctx context.Context, m Manifest) (*VerifyResult, error) {
	res := &VerifyResult{Revision: m.Revision}
	objs := m.Objects()
	res.Checked = len(objs)
	var mu sync.Mutex
	err := kube.ForEach(ctx, objs, func(ctx context.Context, o *unstructured.Unstructured) error {
		ref := kube.RefOf(o)
		ri, _, err := v.Client.Resource(ref)
		if err != nil {
			mu.Lock()
			res.Missing = append(res.Missing, ref)
			mu.Unlock()
			return nil
		}
		live, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			mu.Lock()
			res.Missing = append(res.Missing, ref)
			mu.Unlock()
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", ref, v.Client.Explain(err))
		}
		d := Drift(o.Object, live.Object)
		if IsGatewayAPICRD(o) && JudgeGatewayAPICRD(o, live).LeftAlone {
			d = nil // another installation's compatible CRD, kept on purpose
		}
		var st kube.Readiness
		if kube.NeedsWait(ref) {
			if st, err = v.Client.Check(ctx, ref, true); err != nil {
				return err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(d) > 0 {
			res.Drifted = append(res.Drifted, DriftedObject{Ref: ref, Fields: d})
		}
		if kube.NeedsWait(ref) && !st.Ready {
			res.NotReady = append(res.NotReady, st)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rec, err := FindRecord(ctx, v.Client, m.Revision)
	if err != nil {
		return nil, err
	}
	kinds := m.Kinds()
	if rec != nil {
		kinds = append(kinds, rec.Kinds...)
	}
	extra, err := Leftovers(ctx, v.Client, m, searchKinds(kinds, knownKinds))
	if err != nil {
		return nil, err
	}
	for _, o := range extra {
		res.Extra = append(res.Extra, kube.RefOf(o))
	}
	order := map[string]int{}
	for n, o := range objs {
		order[kube.RefOf(o).Key()] = n
	}
	sortRefs(res.Missing, order)
	sortByKey(res.Drifted, func(d DriftedObject) int { return order[d.Ref.Key()] })
	sortByKey(res.NotReady, func(d kube.Readiness) int { return order[d.Ref.Key()] })
	return res, nil
}
