package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/fallback"
)

// TestFallbackOptIn: the pod's annotation wins over its namespace's label,
// which wins over the mesh default (off); what the injector decided is
// written on the pod for the node agent; a bad value is warned about and
// never turned into direct.
func TestFallbackOptIn(t *testing.T) {
	for _, tc := range []struct {
		name         string
		annot, nsLbl string
		meshDefault  string
		want         string // the pod's mesh.io/fallback after injection, "" none
		warn         string
	}{
		{name: "default off"},
		{name: "namespace label", nsLbl: "direct", want: "direct"},
		{name: "mesh default", meshDefault: "direct", want: "direct"},
		{name: "pod opts out of its namespace", annot: "none", nsLbl: "direct", want: "none"},
		{name: "namespace opts out of the mesh default", nsLbl: "none", meshDefault: "direct"},
		{name: "pod opts in", annot: "direct", want: "direct"},
		{name: "bad pod value", annot: "yes", nsLbl: "direct", want: "yes", warn: `pod annotation mesh.io/fallback: "yes" is not a fallback mode`},
		{name: "bad namespace value", nsLbl: "on", warn: `namespace label mesh.io/fallback: "on" is not a fallback mode`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Annotations: map[string]string{}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}}
			if tc.annot != "" {
				pod.Annotations[fallback.Annotation] = tc.annot
			}
			v := testValues
			v.Fallback = tc.meshDefault
			if tc.nsLbl != "" {
				v.NamespaceLabels = map[string]string{fallback.Annotation: tc.nsLbl}
			}
			out, err := Pod(pod, v)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Annotations[fallback.Annotation]; got != tc.want {
				t.Errorf("mesh.io/fallback %q, want %q", got, tc.want)
			}
			warns := strings.Join(Warnings(pod, v), "\n")
			if tc.warn == "" && warns != "" || !strings.Contains(warns, tc.warn) {
				t.Errorf("warnings %q, want %q", warns, tc.warn)
			}
		})
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{fallback.HangTimeoutAnnotation: "5s"}}}
	if w := strings.Join(Warnings(pod, testValues), "\n"); !strings.Contains(w, `mesh.io/fallback-hang-timeout: "5s" is not a duration from 1s to 2s`) {
		t.Errorf("warnings for a 5s hang timeout: %q", w)
	}
	if _, err := ParseValues([]byte("proxyImage: p\ndiscoveryAddress: d:1\nfallback: always\n")); err == nil || !strings.Contains(err.Error(), `fallback: "always" is not a fallback mode`) {
		t.Errorf("values with fallback: always: %v", err)
	}
}
