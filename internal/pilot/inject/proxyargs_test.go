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
// in Init, so feed the injected arguments to the real entry point, for the
// defaults and for each of Istio's traffic annotations.
func TestInitContainerArgsAreMeshProxys(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ann       map[string]string
		capture   inject.Capture
		want, not []string
	}{
		{name: "defaults: every inbound port but the proxy's, every destination", want: []string{
			"REDIRECT --to-ports 15001", "REDIRECT --to-ports 15006", "-A MESH_INBOUND -p tcp -j MESH_IN_REDIRECT",
			"--dport 15021 -j RETURN", "-A MESH_OUTPUT -j MESH_REDIRECT"}, not: []string{"MESH_DNS", "15053"}},
		{name: "DNS proxying (proxy.istio.io/config proxyMetadata)", ann: map[string]string{
			inject.ProxyConfigAnnotation: "proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}",
		}, want: []string{"-A OUTPUT -p udp --dport 53 -j MESH_DNS", "-A MESH_DNS -m owner --uid-owner 1337 -j RETURN",
			"-A MESH_DNS -m owner --gid-owner 1337 -j RETURN"}},
		{name: "annotations", ann: map[string]string{
			inject.IncludeInboundPortsAnnotation:     "8080, 9090",
			inject.ExcludeInboundPortsAnnotation:     "9091",
			inject.ExcludeOutboundIPRangesAnnotation: "198.18.7.0/24,198.19.0.1",
			inject.IncludeOutboundPortsAnnotation:    "3306",
			inject.ExcludeOutboundPortsAnnotation:    "5432",
		}, want: []string{
			"-A MESH_INBOUND -p tcp --dport 8080 -j MESH_IN_REDIRECT", "-A MESH_INBOUND -p tcp --dport 9090 -j MESH_IN_REDIRECT",
			"-A MESH_INBOUND -p tcp --dport 9091 -j RETURN",
			"-A MESH_OUTPUT -d 198.18.7.0/24 -j RETURN", "-A MESH_OUTPUT -d 198.19.0.1/32 -j RETURN",
			"-A MESH_OUTPUT -p tcp --dport 3306 -j MESH_REDIRECT", "-A MESH_OUTPUT -p tcp --dport 5432 -j RETURN",
			"-A MESH_OUTPUT -j MESH_REDIRECT",
		}, not: []string{"-A MESH_INBOUND -p tcp -j MESH_IN_REDIRECT"}},
		{name: "include ranges only", ann: map[string]string{inject.IncludeOutboundIPRangesAnnotation: "198.19.0.0/16"},
			want: []string{"-A MESH_OUTPUT -d 198.19.0.0/16 -j MESH_REDIRECT"}, not: []string{"-A MESH_OUTPUT -j MESH_REDIRECT"}},
		{name: "no outbound capture", ann: map[string]string{inject.IncludeOutboundIPRangesAnnotation: ""},
			not: []string{"-j MESH_REDIRECT\n"}},
		{name: "no outbound capture by value", capture: inject.Capture{IncludeIPRanges: ptr(""), ExcludeIPRanges: ptr("")},
			not: []string{"-j MESH_REDIRECT\n"}},
		{name: "no inbound capture", ann: map[string]string{inject.IncludeInboundPortsAnnotation: ""},
			not: []string{"PREROUTING"}},
		{name: "injector values, the annotation winning", capture: inject.Capture{ExcludeIPRanges: ptr("198.18.9.0/24"), ExcludeOutboundPorts: ptr("25")},
			ann:  map[string]string{inject.ExcludeOutboundPortsAnnotation: "26"},
			want: []string{"-A MESH_OUTPUT -d 198.18.9.0/24 -j RETURN", "--dport 26 -j RETURN"}, not: []string{"--dport 25 "}},
	} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Annotations: tc.ann},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
		}
		out, err := inject.Pod(pod, inject.Values{ProxyImage: "proxy:1", DiscoveryAddress: "mesh-pilot.mesh-system.svc:15010", LogLevel: "info", Capture: tc.capture})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		args := append(append([]string{}, out.Spec.InitContainers[0].Args...), "--dry-run")
		var stdout, stderr bytes.Buffer
		if code := agent.Main(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: mesh-proxy %v exited %d: %s", tc.name, args, code, stderr.String())
		}
		rules := stdout.String()
		if dns := strings.Contains(tc.ann[inject.ProxyConfigAnnotation], "DNS_CAPTURE"); dns != strings.Contains(rules, "-j REDIRECT --to-ports 15053\n") {
			t.Errorf("%s: DNS redirected to 15053 = %v, want %v:\n%s", tc.name, !dns, dns, rules)
		}
		for _, want := range tc.want {
			if !strings.Contains(rules, want+"\n") {
				t.Errorf("%s: rules lack %q:\n%s", tc.name, want, rules)
			}
		}
		for _, not := range tc.not {
			if strings.Contains(rules, not) {
				t.Errorf("%s: rules have %q:\n%s", tc.name, not, rules)
			}
		}
	}
}

// A traffic annotation the capture cannot carry out refuses the pod, naming
// the annotation, instead of capturing other than asked.
func TestBadTrafficAnnotationsRefuseThePod(t *testing.T) {
	for ann, val := range map[string]string{
		inject.IncludeInboundPortsAnnotation:     "http",
		inject.ExcludeInboundPortsAnnotation:     "70000",
		inject.IncludeOutboundIPRangesAnnotation: "198.18.0.0/33",
		inject.ExcludeOutboundIPRangesAnnotation: "fd00::/8",
		inject.ExcludeOutboundPortsAnnotation:    "5432;5433",
		inject.IncludeOutboundPortsAnnotation:    "-1",
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Annotations: map[string]string{ann: val}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}}
		_, err := inject.Pod(pod, inject.Values{ProxyImage: "proxy:1", DiscoveryAddress: "d:1"})
		if err == nil || !strings.Contains(err.Error(), "annotation "+ann) {
			t.Errorf("%s: %q: %v, want an error naming the annotation", ann, val, err)
		}
	}
}

func ptr(s string) *string { return &s }

// A DNS proxying switch that is not a bool refuses the pod, naming it:
// mesh-proxy would stop at start on it.
func TestMalformedDNSSwitchRefusesThePod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Annotations: map[string]string{
			inject.ProxyConfigAnnotation: "proxyMetadata: {ISTIO_META_DNS_AUTO_ALLOCATE: \"yes\"}"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}},
	}
	_, err := inject.Pod(pod, inject.Values{ProxyImage: "proxy:1", DiscoveryAddress: "mesh-pilot.mesh-system.svc:15010", LogLevel: "info"})
	if err == nil || !strings.Contains(err.Error(), "proxyMetadata.ISTIO_META_DNS_AUTO_ALLOCATE") {
		t.Fatalf("got %v, want an error naming proxyMetadata.ISTIO_META_DNS_AUTO_ALLOCATE", err)
	}
}
