package analyzers

import (
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/fallback"
)

// FallbackVetoes reports workloads that opt into sidecar fallback
// (mesh.io/fallback: direct, docs/fallback.md) while a security policy
// vetoes it (MSH0006): their owners expect traffic to survive a dead
// sidecar, and it fails closed. The decision is the node agent's own
// (fallback.Policies.Veto), made from the policies and Services in the
// snapshot.
type FallbackVetoes struct{}

// Metadata describes the analyzer.
func (*FallbackVetoes) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "fallback.Vetoes", Description: "Checks workloads that opt into sidecar fallback are not vetoed by security policy",
		Codes: []*analyze.MessageType{analyze.FallbackVetoed, analyze.FallbackDestinationsCaptured}}
}

// Analyze runs the checks.
func (*FallbackVetoes) Analyze(ctx *analyze.Context) {
	var policies *fallback.Policies
	for _, w := range ctx.Workloads() {
		if systemNamespaces[w.Namespace] || (w.IsPod() && len(w.Pod.OwnerReferences) > 0) {
			continue // a controlled pod is reported through its controller's template
		}
		var nsLabels map[string]string
		if ns := ctx.Namespace(w.Namespace); ns != nil {
			nsLabels = ns.Labels
		}
		mode, where, err := fallback.Mode(w.Annotations, nsLabels, "")
		if err != nil || mode != fallback.ModeDirect {
			continue // a bad value is IST0125's; none is the default
		}
		if policies == nil {
			policies = fallbackPolicies(ctx)
		}
		d := policies.Decide(ctx.Mesh.Root(), w.Namespace, w.Labels)
		field := templatePath(w.Kind) + ".metadata.annotations[\"" + fallback.Annotation + "\"]"
		if w.IsPod() {
			field = "metadata.annotations[\"" + fallback.Annotation + "\"]"
		}
		if !strings.HasPrefix(where, "pod annotation") {
			field = ""
		}
		veto := d.Veto
		if len(veto) == 0 {
			if len(d.Kept) > 0 {
				ctx.Report(analyze.FallbackDestinationsCaptured, w.Resource, field,
					"The workload opts into sidecar fallback (%s: direct, from the %s); while its proxy is down, its connections to destinations that require mTLS stay captured and fail: %s",
					fallback.Annotation, where, strings.Join(d.Kept, "; "))
			}
			continue
		}
		ctx.Report(analyze.FallbackVetoed, w.Resource, field,
			"The workload opts into sidecar fallback (%s: direct, from the %s), but security policy vetoes it, so it fails closed when its proxy is down: %s",
			fallback.Annotation, where, strings.Join(veto, "; "))
	}
}

// fallbackPolicies gives the snapshot's security policies the shape the
// node agent reads them in: as the API server serves them.
func fallbackPolicies(ctx *analyze.Context) *fallback.Policies {
	conv := func(kind string) []unstructured.Unstructured {
		var out []unstructured.Unstructured
		for _, r := range ctx.ByKind(kind) {
			if r.Object == nil {
				continue
			}
			b, err := json.Marshal(r.Object)
			if err != nil {
				continue
			}
			var m map[string]any
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			u := unstructured.Unstructured{Object: m}
			u.SetNamespace(r.Namespace)
			u.SetName(r.Name)
			out = append(out, u)
		}
		return out
	}
	// Services tell the agent which DestinationRule hosts it can map to
	// addresses (a host that is none vetoes); the addresses themselves do
	// not matter here.
	var svcs []corev1.Service
	for _, u := range conv("Service") {
		var svc corev1.Service
		if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &svc) == nil {
			svcs = append(svcs, svc)
		}
	}
	return &fallback.Policies{
		PeerAuthentications:   conv("PeerAuthentication"),
		DestinationRules:      conv("DestinationRule"),
		AuthorizationPolicies: conv("AuthorizationPolicy"),
		Services:              svcs,
	}
}
