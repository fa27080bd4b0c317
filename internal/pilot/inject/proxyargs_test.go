package inject_test

import (
	"bytes"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/proxy/agent"
)

// The init container's arguments are written here and parsed by mesh-proxy;
// a renamed subcommand or flag on either side would leave injected pods stuck
// in Init, so feed the injected arguments to the real entry point.
func TestInitContainerArgsAreMeshProxys(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}
	out, err := inject.Pod(pod, inject.Values{ProxyImage: "proxy:1", DiscoveryAddress: "mesh-pilot.mesh-system.svc:15010", LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, out.Spec.InitContainers[0].Args...), "--dry-run")
	var stdout, stderr bytes.Buffer
	if code := agent.Main(args, &stdout, &stderr); code != 0 {
		t.Fatalf("mesh-proxy %v exited %d: %s", args, code, stderr.String())
	}
	rules := stdout.String()
	for _, want := range []string{"15001", "15006", "8080"} {
		if !strings.Contains(rules, want) {
			t.Errorf("iptables rules for the injected pod do not mention %s:\n%s", want, rules)
		}
	}
}
