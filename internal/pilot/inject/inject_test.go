package inject

import (
	"bytes"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/model"
)

var testValues = Values{ProxyImage: "proxy:1", DiscoveryAddress: "mesh-pilot.mesh-system.svc:15012", LogLevel: "info", Revision: "canary"}

func TestPodInjection(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web", "version": "v2"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}
	if why := Skip(pod); why != "" {
		t.Fatalf("plain pod skipped: %s", why)
	}
	out, err := Pod(pod, testValues)
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.Containers[0].Name != ProxyContainer || out.Spec.Containers[1].Name != "web" {
		t.Errorf("containers %v: want the proxy first, then the app", []string{out.Spec.Containers[0].Name, out.Spec.Containers[1].Name})
	}
	if out.Spec.InitContainers[0].Name != InitContainer || !strings.Contains(strings.Join(out.Spec.InitContainers[0].Args, " "), "--inbound-ports *") {
		t.Errorf("init container %v", out.Spec.InitContainers[0].Args)
	}
	if out.Labels[model.TLSModeLabel] != "istio" || out.Labels[RevisionLabel] != "canary" || out.Labels[CanonicalNameLabel] != "web" {
		t.Errorf("labels %v", out.Labels)
	}
	if len(pod.Spec.Containers) != 1 || pod.Labels[model.TLSModeLabel] != "" {
		t.Error("the input pod was modified")
	}
	if why := Skip(out); why == "" {
		t.Error("an injected pod would be injected twice")
	}
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
	}{
		{"opt-out label", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{InjectLabel: "false"}}}},
		{"istio annotation", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{IstioInjectAnnot: "false"}}}},
		{"host network", corev1.Pod{Spec: corev1.PodSpec{HostNetwork: true}}},
	} {
		if Skip(&tc.pod) == "" {
			t.Errorf("%s: not skipped", tc.name)
		}
	}
}

func FuzzManifests(f *testing.F) {
	f.Add("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i}]}\n")
	f.Add("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: [{name: c}]}}}\n---\nkind: Service\n")
	f.Add("kind: CronJob\napiVersion: batch/v1\nspec: {jobTemplate: {spec: {template: {}}}}\n")
	f.Add("---\n# only a comment\n---\n")
	f.Add("kind: [\n")
	f.Fuzz(func(t *testing.T, in string) {
		var out bytes.Buffer
		if err := Manifests("fuzz.yaml", strings.NewReader(in), &out, testValues); err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		// Injected output must itself be accepted, and injecting twice changes nothing.
		var again bytes.Buffer
		if err := Manifests("out.yaml", bytes.NewReader(out.Bytes()), &again, testValues); err != nil {
			t.Fatalf("own output rejected: %v\n%s", err, out.String())
		}
		if strings.Count(again.String(), "name: "+ProxyContainer+"\n") != strings.Count(out.String(), "name: "+ProxyContainer+"\n") {
			t.Errorf("second injection added proxies")
		}
	})
}

func FuzzParseValues(f *testing.F) {
	f.Add("proxyImage: p\ndiscoveryAddress: d:1\n")
	f.Add("proxyImage: p\n")
	f.Add("resources: {limits: {cpu: x}}\n")
	f.Fuzz(func(t *testing.T, in string) {
		v, err := ParseValues([]byte(in))
		if err == nil && (v.ProxyImage == "" || v.DiscoveryAddress == "") {
			t.Errorf("accepted values without image or address: %+v", v)
		}
	})
}
