package inject_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshapi "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/proxy/agent"
)

func proxyOf(t *testing.T, p *corev1.Pod) corev1.Container {
	t.Helper()
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == inject.ProxyContainer {
			return c
		}
	}
	t.Fatal("no proxy container")
	return corev1.Container{}
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestProxyConfigAnnotation: proxy.istio.io/config is merged over
// meshConfig.defaultConfig as Istio merges it (its fields replace the
// mesh's, proxyMetadata merged key by key) and carried out: proxyMetadata
// as the proxy's environment, terminationDrainDuration as the variable
// mesh-proxy reads (whole seconds, rounded up), concurrency as
// --concurrency, holdApplicationUntilProxyStarts as the proxy first with a
// postStart `mesh-proxy wait`; a field it does not act on is a warning;
// the proxy container's arguments and the hook's are the real mesh-proxy's.
func TestProxyConfigAnnotation(t *testing.T) {
	v := inject.Values{ProxyImage: "proxy:1", DiscoveryAddress: "mesh-pilot.mesh-system.svc:15010", LogLevel: "info",
		MeshDefaults: &meshapi.ProxyConfig{
			TerminationDrainDuration: durationpb.New(30 * time.Second),
			Concurrency:              wrapperspb.Int32(4),
			ProxyMetadata:            map[string]string{"A": "mesh", "B": "mesh"},
		}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Annotations: map[string]string{inject.ProxyConfigAnnotation: `
terminationDrainDuration: 1.5s
holdApplicationUntilProxyStarts: true
proxyMetadata: {B: pod, C: pod}
tracing: {sampling: 10}
`}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}},
	}
	out, err := inject.Pod(pod, v)
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.Containers[0].Name != inject.ProxyContainer {
		t.Fatalf("containers %v: the proxy must come first to hold the app", out.Spec.Containers)
	}
	proxy := out.Spec.Containers[0]
	e := env(proxy)
	if e["A"] != "mesh" || e["B"] != "pod" || e["C"] != "pod" {
		t.Errorf("proxyMetadata env A=%q B=%q C=%q; want mesh, pod, pod", e["A"], e["B"], e["C"])
	}
	if got := e[agent.TerminationDrainEnv]; got != "2" {
		t.Errorf("%s=%q; want 2 (the pod's 1.5s, rounded up, over the mesh's 30s)", agent.TerminationDrainEnv, got)
	}
	if got := flagValue(proxy.Args, "--concurrency"); got != "4" {
		t.Errorf("--concurrency %q; want the mesh default's 4", got)
	}
	var hook *corev1.LifecycleHandler
	if proxy.Lifecycle != nil {
		hook = proxy.Lifecycle.PostStart
	}
	if hook == nil || hook.Exec == nil || len(hook.Exec.Command) < 2 || hook.Exec.Command[0] != "mesh-proxy" || hook.Exec.Command[1] != "wait" {
		t.Fatalf("postStart %+v; want exec mesh-proxy wait", proxy.Lifecycle)
	}
	// The hook's command is the real mesh-proxy's: against a ready URL it exits 0.
	ready := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ready.Close()
	var stdout, stderr bytes.Buffer
	if code := agent.Main(append(append([]string{}, hook.Exec.Command[1:]...), "--url", ready.URL), &stdout, &stderr); code != 0 {
		t.Errorf("mesh-proxy %v exited %d: %s", hook.Exec.Command[1:], code, stderr.String())
	}
	// The container's arguments parse (a bad --concurrency would be 64).
	stderr.Reset()
	if code := agent.Main(append(append([]string{}, proxy.Args...), "--mode", "validate", "--config-yaml", "node: {id: a, cluster: b}"), &stdout, &stderr); code == 64 {
		t.Errorf("mesh-proxy rejects the injected arguments %v: %s", proxy.Args, stderr.String())
	}
	w := inject.Warnings(pod, v)
	if len(w) != 1 || !strings.Contains(w[0], "field tracing is not carried out") {
		t.Errorf("warnings %q; want one naming tracing", w)
	}

	// Native sidecars hold the app anyway: no hook, the rest the same.
	v.KubeVersion = "v1.30.0"
	out, err = inject.Pod(pod, v)
	if err != nil {
		t.Fatal(err)
	}
	if p := proxyOf(t, out); p.Lifecycle != nil || env(p)["C"] != "pod" {
		t.Errorf("native sidecar: lifecycle %+v, env C=%q; want no hook, the pod's metadata", p.Lifecycle, env(p)["C"])
	}

	// A malformed annotation refuses the pod, naming it and the field.
	pod.Annotations[inject.ProxyConfigAnnotation] = "terminationDrainDurations: 5s"
	if _, err := inject.Pod(pod, v); err == nil || !strings.Contains(err.Error(), inject.ProxyConfigAnnotation) || !strings.Contains(err.Error(), "terminationDrainDurations") {
		t.Errorf("misspelt field: %v; want an error naming the annotation and the field", err)
	}
}

// TestConcurrencyFollowsTheCPULimit: with no concurrency configured the
// proxy gets its CPU limit rounded up, else 2 (Istio's defaults); 0 asks
// for every CPU.
func TestConcurrencyFollowsTheCPULimit(t *testing.T) {
	for _, c := range []struct {
		ann  map[string]string
		want string
	}{
		{nil, "2"},
		{map[string]string{inject.ProxyCPULimitAnnotation: "2500m"}, "3"},
		{map[string]string{inject.ProxyCPULimitAnnotation: "500m"}, "1"},
		{map[string]string{inject.ProxyCPULimitAnnotation: "2500m", inject.ProxyConfigAnnotation: "concurrency: 0"}, "0"},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Annotations: c.ann}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}}
		out, err := inject.Pod(pod, inject.Values{ProxyImage: "proxy:1", DiscoveryAddress: "d:1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := flagValue(proxyOf(t, out).Args, "--concurrency"); got != c.want {
			t.Errorf("%v: --concurrency %q, want %s", c.ann, got, c.want)
		}
	}
}

// TestProxyResourceAnnotations: sidecar.istio.io/proxyCPU|Memory[Limit]
// set the proxy's requests and limits and, as in Istio, replace the
// injector values' resources whole; a malformed quantity refuses the pod.
func TestProxyResourceAnnotations(t *testing.T) {
	v := inject.Values{ProxyImage: "proxy:1", DiscoveryAddress: "d:1", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}}
	pod := func(ann map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Annotations: ann}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}}
	}
	out, err := inject.Pod(pod(nil), v)
	if err != nil {
		t.Fatal(err)
	}
	if r := proxyOf(t, out).Resources; r.Requests.Cpu().String() != "100m" || r.Limits.Memory().String() != "1Gi" {
		t.Errorf("no annotations: resources %v; want the values'", r)
	}
	out, err = inject.Pod(pod(map[string]string{inject.ProxyCPUAnnotation: "250m", inject.ProxyMemoryLimitAnnotation: "256Mi"}), v)
	if err != nil {
		t.Fatal(err)
	}
	r := proxyOf(t, out).Resources
	if r.Requests.Cpu().String() != "250m" || r.Limits.Memory().String() != "256Mi" {
		t.Errorf("annotations: resources %v; want cpu request 250m, memory limit 256Mi", r)
	}
	if _, ok := r.Requests[corev1.ResourceMemory]; ok {
		t.Errorf("annotations: memory request %v kept from the values; Istio's annotations replace them whole", r.Requests.Memory())
	}
	if _, ok := r.Limits[corev1.ResourceCPU]; ok {
		t.Errorf("annotations: cpu limit %v kept from the values", r.Limits.Cpu())
	}
	for ann, val := range map[string]string{inject.ProxyCPUAnnotation: "lots", inject.ProxyMemoryLimitAnnotation: "1GB!"} {
		if _, err := inject.Pod(pod(map[string]string{ann: val}), v); err == nil || !strings.Contains(err.Error(), ann) {
			t.Errorf("%s=%q: %v; want an error naming the annotation", ann, val, err)
		}
	}
	if _, err := inject.Pod(pod(map[string]string{inject.ProxyCPUAnnotation: "2", inject.ProxyCPULimitAnnotation: "1"}), v); err == nil || !strings.Contains(err.Error(), "above its limit") {
		t.Errorf("request above limit: %v; want refused", err)
	}
}
