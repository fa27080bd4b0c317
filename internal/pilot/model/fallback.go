package model

import (
	"maps"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"mesh.dev/mesh/internal/fallback"
)

// Peers of a pod in sidecar fallback (docs/fallback.md) must reach its app
// directly: its capture rules no longer send inbound connections to the
// proxy, so mesh mTLS would reach an app that does not speak it. The
// pod's endpoints lose the label that tells auto-mTLS clients the pod has
// a sidecar, and they stay in the load balancer: the pod is not Ready (its
// proxy's readiness fails), but its app is serving.

// TLSModeLabel marks pods whose sidecar accepts mesh mTLS: the injector
// sets it to "istio", and the generator sends the endpoints carrying it
// with the tlsMode match auto-mTLS clients connect over mTLS by. The one
// definition of the label, for the injector, pilot and the generator.
const TLSModeLabel = "security.istio.io/tlsMode"

// inFallback reports whether the node agent says the pod's traffic
// bypasses its sidecar.
func inFallback(pod *corev1.Pod) bool { return FallbackReason(pod) != "" }

// FallbackReason is why the pod is in sidecar fallback (the reason of its
// condition, e.g. ProxyExited), "" when it is not.
func FallbackReason(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == fallback.ConditionType && c.Status == corev1.ConditionTrue {
			if c.Reason == "" {
				return "Unknown"
			}
			return c.Reason
		}
	}
	return ""
}

// PodsInFallback lists the pods in sidecar fallback, by namespace and name.
func (s *Snapshot) PodsInFallback() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range s.in.Pods {
		if p.DeletionTimestamp == nil && inFallback(p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// fallbackEndpoint gives the labels and readiness of an endpoint of a pod
// in fallback: no tlsMode label, and ready when every container but the
// proxy is, unless the pod is terminating.
func fallbackEndpoint(pod *corev1.Pod, cond discoveryv1.EndpointConditions) (map[string]string, bool) {
	lbls := maps.Clone(pod.Labels)
	delete(lbls, TLSModeLabel)
	if cond.Terminating != nil && *cond.Terminating {
		return lbls, false
	}
	apps := 0
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name == fallback.ProxyContainer {
			continue
		}
		if !st.Ready {
			return lbls, false
		}
		apps++
	}
	return lbls, apps > 0
}
