package inject

import (
	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/fallback"
)

// applyFallback carries the fallback opt-in to the pod, where the node
// agent reads it (docs/fallback.md): a pod that chose none or direct
// itself keeps its annotation; one whose namespace label or the mesh
// default chose direct gets mesh.io/fallback: direct written, so the
// decision made at admission is the one the agent carries out. An invalid
// value is left as it is (the agent fails closed on it and says so) and
// reported by fallbackWarnings.
func applyFallback(pod *corev1.Pod, v Values) {
	if _, ok := pod.Annotations[fallback.Annotation]; ok {
		return
	}
	mode, _, err := fallback.Mode(nil, v.NamespaceLabels, v.Fallback)
	if err == nil && mode == fallback.ModeDirect {
		pod.Annotations[fallback.Annotation] = fallback.ModeDirect
	}
}

// fallbackWarnings names opt-in values that are not carried out.
func fallbackWarnings(pod *corev1.Pod, v Values) []string {
	var out []string
	if _, _, err := fallback.Mode(pod.Annotations, v.NamespaceLabels, v.Fallback); err != nil {
		out = append(out, err.Error())
	}
	if _, err := fallback.HangTimeout(pod); err != nil {
		out = append(out, err.Error())
	}
	return out
}
