package inject

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func nativeTestPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "job-1", Namespace: "shop", Labels: map[string]string{"app": "job"}, Annotations: annotations},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "app:1"}},
			Containers: []corev1.Container{{Name: "app", Image: "app:1",
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}}}},
		},
	}
}

func names(cs []corev1.Container) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

// TestNativeSidecarLayout: on Kubernetes 1.29 or later the proxy is a native
// sidecar, after the capture and before the app's init containers, with a
// startup probe on its readiness; older or unknown clusters get the classic
// layout; the annotation and the value decide over the version.
func TestNativeSidecarLayout(t *testing.T) {
	v := testValues
	v.KubeVersion = "v1.34.1"
	out, err := Pod(nativeTestPod(nil), v)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(out.Spec.InitContainers); got != InitContainer+","+ProxyContainer+",migrate" {
		t.Errorf("init containers %s: want the capture, the proxy, then the app's", got)
	}
	if got := names(out.Spec.Containers); got != "app" {
		t.Errorf("containers %s: want the app's only", got)
	}
	proxy := out.Spec.InitContainers[1]
	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("proxy restartPolicy %v, want Always", proxy.RestartPolicy)
	}
	if p := proxy.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz/ready" || p.HTTPGet.Port.IntValue() != 15021 {
		t.Errorf("proxy startup probe %+v, want GET :15021/healthz/ready", p)
	}
	if proxy.ReadinessProbe == nil {
		t.Error("the native sidecar lost its readiness probe")
	}
	if !strings.Contains(envOf(proxy, "ISTIO_KUBE_APP_PROBERS"), "/app-health/app/readyz") {
		t.Errorf("the app's probes were not handed to the native sidecar: %v", proxy.Env)
	}
	var st Status
	if err := json.Unmarshal([]byte(out.Annotations[StatusAnnotation]), &st); err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.InitContainers, ",") != InitContainer+","+ProxyContainer || len(st.Containers) != 0 {
		t.Errorf("status annotation %s", out.Annotations[StatusAnnotation])
	}
	out.Annotations = map[string]string{} // Skip must see the proxy itself
	if why := Skip(out); why == "" {
		t.Error("a pod with the native sidecar would be injected again")
	}

	no, yes := false, true
	for _, tc := range []struct {
		name, kube string
		annot      map[string]string
		value      *bool
		native     bool
		err        string
	}{
		{name: "1.29", kube: "v1.29.0", native: true},
		{name: "a provider's version", kube: "v1.30.4-gke.1348000", native: true},
		{name: "1.28", kube: "v1.28.9"},
		{name: "unknown version", kube: ""},
		{name: "annotation off", kube: "v1.34.1", annot: map[string]string{NativeSidecarAnnotation: "false"}},
		{name: "value off", kube: "v1.34.1", value: &no},
		{name: "annotation over value", kube: "v1.34.1", value: &no, annot: map[string]string{NativeSidecarAnnotation: "true"}, native: true},
		{name: "value on, version unknown", value: &yes, native: true},
		{name: "annotation on, old cluster", kube: "v1.28.2", annot: map[string]string{NativeSidecarAnnotation: "true"}, err: "annotation sidecar.istio.io/nativeSidecar asks for native sidecars, but the cluster runs Kubernetes v1.28.2"},
		{name: "value on, old cluster", kube: "v1.27.0", value: &yes, err: "nativeSidecars (ENABLE_NATIVE_SIDECARS) asks for native sidecars"},
		{name: "bad annotation", kube: "v1.34.1", annot: map[string]string{NativeSidecarAnnotation: "yes"}, err: `annotation sidecar.istio.io/nativeSidecar: "yes" is not true or false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testValues
			v.KubeVersion, v.NativeSidecars = tc.kube, tc.value
			out, err := Pod(nativeTestPod(tc.annot), v)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			native := hasContainer(out.Spec.InitContainers, ProxyContainer)
			if native != tc.native || hasContainer(out.Spec.Containers, ProxyContainer) == tc.native {
				t.Errorf("init containers %s, containers %s: native %v, want %v", names(out.Spec.InitContainers), names(out.Spec.Containers), native, tc.native)
			}
			if !tc.native && names(out.Spec.InitContainers) != InitContainer+",migrate" {
				t.Errorf("classic init containers %s", names(out.Spec.InitContainers))
			}
		})
	}
}

func envOf(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
