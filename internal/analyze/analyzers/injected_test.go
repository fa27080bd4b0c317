package analyzers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/inject"
)

// A pod the mesh's own injector produced must not be reported for the
// annotations the injector put on it (the Bookinfo walk in e2e/ met exactly that).
func TestInjectorAnnotationsAreKnown(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}
	out, err := inject.Pod(pod, inject.Values{ProxyImage: "proxy:1", DiscoveryAddress: "mesh-pilot.mesh-system.svc:15010", LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Annotations) == 0 {
		t.Fatal("the injector added no annotations; this test checks nothing")
	}
	for k := range out.Annotations {
		if !ourDomain(k) {
			continue
		}
		info, known := knownAnnotations[k]
		if !known {
			t.Errorf("annotation %q set by the injector is unknown to analyze (IST0108 on every injected pod)", k)
			continue
		}
		if info.kinds != nil && !info.kinds["Pod"] {
			t.Errorf("annotation %q set by the injector is not allowed on pods (IST0107)", k)
		}
	}
}
