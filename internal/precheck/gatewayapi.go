package precheck

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// gatewayAPI reports the Gateway API CRDs the cluster has, as Istio's
// precheck does, against those the rendering brings: absent (the install
// adds them), mesh's own, another installation's kept as they are (same
// channel, same major version, at least mesh's release), or a conflict
// (another channel, an older or unknown release), which blocks the install.
func (c *Checker) gatewayAPI(ctx context.Context) (Result, error) {
	r := Result{Name: "Gateway API CRDs"}
	var want []*unstructured.Unstructured
	for _, o := range c.Manifest.Objects() {
		if install.IsGatewayAPICRD(o) {
			want = append(want, o)
		}
	}
	live, err := c.Client.Dynamic.Resource(kube.CRDResource()).List(ctx, metav1.ListOptions{})
	if err != nil {
		return r, c.Client.Explain(err)
	}
	have := map[string]*unstructured.Unstructured{}
	for i := range live.Items {
		if install.IsGatewayAPICRD(&live.Items[i]) {
			have[live.Items[i].GetName()] = &live.Items[i]
		}
	}
	if len(want) == 0 {
		// The rendering leaves the Gateway API to someone else
		// (base.enableGatewayAPICRDs=false): say what pilot will find.
		r.Passed = true
		if len(have) == 0 {
			r.Passed, r.Warning = false, true
			r.Message = "no Gateway API CRDs in the cluster and the rendering brings none: pilot serves no Gateway API config"
			r.Remedy = "install the Gateway API standard channel, or render with values.base.enableGatewayAPICRDs=true"
			return r, nil
		}
		r.Message = fmt.Sprintf("%d Gateway API CRDs are managed outside mesh: %s", len(have), releases(have))
		return r, nil
	}
	wantVersion := want[0].GetAnnotations()["gateway.networking.k8s.io/bundle-version"]
	var kept, ours, added []string
	for _, o := range want {
		l := have[o.GetName()]
		if l == nil {
			added = append(added, o.GetName())
			continue
		}
		switch v := install.JudgeGatewayAPICRD(o, l); {
		case v.Ours:
			ours = append(ours, o.GetName())
		case v.LeftAlone:
			kept = append(kept, fmt.Sprintf("%s (%s %s)", o.GetName(), v.Channel, v.Version))
		default:
			r.Details = append(r.Details, fmt.Sprintf("CRD %s belongs to another installation and %s", o.GetName(), v.Conflict))
		}
	}
	if len(r.Details) > 0 {
		r.Message = fmt.Sprintf("%d Gateway API CRD conflict(s) with the standard channel %s mesh ships", len(r.Details), wantVersion)
		r.Remedy = install.GatewayAPIRemedy(wantVersion)
		return r, nil
	}
	r.Passed = true
	var parts []string
	if len(have) == 0 {
		parts = append(parts, fmt.Sprintf("not installed; the install adds the standard channel %s (%d CRDs)", wantVersion, len(want)))
	} else {
		parts = append(parts, "found "+releases(have))
		if len(ours) > 0 {
			parts = append(parts, fmt.Sprintf("%d are mesh's", len(ours)))
		}
		if len(kept) > 0 {
			parts = append(parts, fmt.Sprintf("%d of another installation are compatible and left as they are", len(kept)))
			r.Details = kept
		}
		if len(added) > 0 {
			parts = append(parts, fmt.Sprintf("the install adds %s", strings.Join(added, ", ")))
		}
	}
	r.Message = strings.Join(parts, "; ")
	return r, nil
}

// releases summarises the channel and bundle version the CRDs carry.
func releases(crds map[string]*unstructured.Unstructured) string {
	count := map[string]int{}
	for _, c := range crds {
		a := c.GetAnnotations()
		ch, v := a["gateway.networking.k8s.io/channel"], a["gateway.networking.k8s.io/bundle-version"]
		if ch == "" {
			ch = "unknown channel"
		}
		if v == "" {
			v = "unknown version"
		}
		count[ch+" "+v]++
	}
	var out []string
	for k, n := range count {
		out = append(out, fmt.Sprintf("%s (%d CRDs)", k, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
