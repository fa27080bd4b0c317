package inject

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"mesh.dev/mesh/internal/proxy/appprobe"
)

func probedPod(annotations map[string]string) *corev1.Pod {
	svc := "shop.Cart"
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{
				Name:  "web",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/ready", Port: intstr.FromString("http"), HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}},
				}}, PeriodSeconds: 3, FailureThreshold: 7, TimeoutSeconds: 2},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}},
				StartupProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
			},
			{
				Name:           "cart",
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: &svc}}},
				LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/x", Port: intstr.FromString("nope")}}},
			},
		}},
	}
}

func proberEnv(t *testing.T, pod *corev1.Pod) (appprobe.Probers, bool) {
	t.Helper()
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Name == appprobe.EnvVar {
			ps, err := appprobe.Parse(e.Value)
			if err != nil {
				t.Fatalf("the agent refuses what the injector wrote: %v", err)
			}
			return ps, true
		}
	}
	return nil, false
}

func TestProbesRewrittenToTheStatusPort(t *testing.T) {
	out, err := Pod(probedPod(nil), testValues)
	if err != nil {
		t.Fatal(err)
	}
	web, cart := out.Spec.Containers[1], out.Spec.Containers[2]
	wantHTTP := func(what string, p *corev1.Probe, path string) {
		t.Helper()
		if p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.IntValue() != 15020 || p.TCPSocket != nil || p.GRPC != nil || len(p.HTTPGet.HTTPHeaders) != 0 {
			t.Errorf("%s: %+v, want GET %s on 15020", what, p.ProbeHandler, path)
		}
	}
	wantHTTP("web readiness", web.ReadinessProbe, "/app-health/web/readyz")
	wantHTTP("web liveness (tcp)", web.LivenessProbe, "/app-health/web/livez")
	wantHTTP("cart readiness (grpc)", cart.ReadinessProbe, "/app-health/cart/readyz")
	if r := web.ReadinessProbe; r.PeriodSeconds != 3 || r.FailureThreshold != 7 || r.TimeoutSeconds != 2 {
		t.Errorf("timing not kept: %+v", r)
	}
	if web.StartupProbe.Exec == nil {
		t.Errorf("exec probe rewritten: %+v", web.StartupProbe)
	}
	if cart.LivenessProbe.HTTPGet.Port.StrVal != "nope" {
		t.Errorf("probe on an undeclared port name rewritten: %+v", cart.LivenessProbe)
	}
	ps, ok := proberEnv(t, out)
	if !ok {
		t.Fatalf("no %s on the proxy", appprobe.EnvVar)
	}
	if len(ps) != 3 {
		t.Errorf("probers %v: want 3", ps)
	}
	if h := ps["/app-health/web/readyz"].HTTPGet; h == nil || h.Port != 8080 || h.Path != "/ready" || len(h.HTTPHeaders) != 1 || ps["/app-health/web/readyz"].TimeoutSeconds != 2 {
		t.Errorf("web readiness prober %+v", ps["/app-health/web/readyz"])
	}
	if s := ps["/app-health/web/livez"].TCPSocket; s == nil || s.Port != 8080 {
		t.Errorf("web liveness prober %+v", ps["/app-health/web/livez"])
	}
	if g := ps["/app-health/cart/readyz"].GRPC; g == nil || g.Port != 9090 || *g.Service != "shop.Cart" {
		t.Errorf("cart readiness prober %+v", ps["/app-health/cart/readyz"])
	}
	// The proxy's own readiness probe stays on its health port.
	if p := out.Spec.Containers[0].ReadinessProbe.HTTPGet; p.Port.IntValue() != 15021 || p.Path != "/healthz/ready" {
		t.Errorf("proxy probe changed: %+v", p)
	}
}

func TestProbeRewriteOptOut(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name string
		ann  map[string]string
		v    Values
		want bool
	}{
		{"default", nil, testValues, true},
		{"annotation false", map[string]string{RewriteProbesAnnotation: "false"}, testValues, false},
		{"values false", nil, func() Values { v := testValues; v.RewriteAppHTTPProbe = &off; return v }(), false},
		{"annotation true over values false", map[string]string{RewriteProbesAnnotation: "true"}, func() Values { v := testValues; v.RewriteAppHTTPProbe = &off; return v }(), true},
	} {
		out, err := Pod(probedPod(tc.ann), tc.v)
		if err != nil {
			t.Fatal(err)
		}
		_, has := proberEnv(t, out)
		rewritten := out.Spec.Containers[1].ReadinessProbe.HTTPGet.Port.IntValue() == 15020
		if has != tc.want || rewritten != tc.want {
			t.Errorf("%s: env %v, probe rewritten %v; want %v", tc.name, has, rewritten, tc.want)
		}
	}
}
