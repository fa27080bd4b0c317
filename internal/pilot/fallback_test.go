package pilot_test

import (
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"mesh.dev/mesh/internal/fallback"
	"mesh.dev/mesh/internal/pilot/inject"
)

type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.Join(w.msgs, "\n")
	w.msgs = nil
	return s
}

// testFallbackOptIn: pilot's webhook, called by the API server, reads the
// pod's namespace label mesh.io/fallback and writes the decision on the pod
// (the annotation the node agent reads); the pod's own annotation wins; the
// mesh default (the injector values here say nothing) is off; a bad value
// comes back to the client as an admission warning and is not taken as
// direct.
func testFallbackOptIn(t *testing.T, e *env) {
	warn := &warnings{}
	cfg := rest.CopyConfig(e.cfg)
	cfg.WarningHandler = warn
	kube := kubernetes.NewForConfigOrDie(cfg)
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "fallback-direct", Labels: map[string]string{inject.NamespaceLabel: "enabled", fallback.Annotation: "direct"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "fallback-bad", Labels: map[string]string{inject.NamespaceLabel: "enabled", fallback.Annotation: "always"}}},
	} {
		if _, err := kube.CoreV1().Namespaces().Create(e.ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		ns, name, annot string
		want, warn      string
	}{
		{ns: "bookinfo", name: "unlabelled-ns"},
		{ns: "fallback-direct", name: "from-namespace", want: "direct"},
		{ns: "fallback-direct", name: "opted-out", annot: "none", want: "none"},
		{ns: "fallback-direct", name: "bad-annotation", annot: "yes", want: "yes", warn: `pod annotation mesh.io/fallback: "yes" is not a fallback mode (want "direct" or "none"); the pod fails closed`},
		{ns: "fallback-bad", name: "bad-namespace-label", warn: `namespace label mesh.io/fallback: "always" is not a fallback mode`},
		{ns: "bookinfo", name: "opted-in", annot: "direct", want: "direct"},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Annotations: map[string]string{}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
		if tc.annot != "" {
			pod.Annotations[fallback.Annotation] = tc.annot
		}
		created, err := kube.CoreV1().Pods(tc.ns).Create(e.ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if created.Annotations[inject.StatusAnnotation] == "" {
			t.Fatalf("pod %s/%s was not injected", tc.ns, tc.name)
		}
		if got := created.Annotations[fallback.Annotation]; got != tc.want {
			t.Errorf("pod %s/%s: mesh.io/fallback %q after admission, want %q", tc.ns, tc.name, got, tc.want)
		}
		if got := warn.take(); tc.warn == "" && strings.Contains(got, "fallback") || !strings.Contains(got, tc.warn) {
			t.Errorf("pod %s/%s: admission warnings %q, want %q", tc.ns, tc.name, got, tc.warn)
		}
	}
}
